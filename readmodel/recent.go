package readmodel

import (
	"encoding/json"
	"fmt"
	"iter"
)

// Recent is a bounded list kept newest first, such as a product's five
// most recent reviews.
//
// It is an immutable value: Push returns a new Recent backed by a new
// array and never writes to the receiver's, so a view holding a Recent can
// be shared with readers (see [Map]) while a projection builds the next
// version. Push copies at most Cap elements; capacities are meant to be
// small.
//
// The zero Recent has capacity 0 and Push panics on it; create one with
// [NewRecent].
type Recent[T any] struct {
	items    []T // newest first; never written after construction
	capacity int
}

// NewRecent returns an empty Recent that keeps the newest capacity items.
// It panics if capacity < 1.
func NewRecent[T any](capacity int) Recent[T] {
	if capacity < 1 {
		panic(fmt.Sprintf("readmodel: NewRecent capacity %d < 1", capacity))
	}
	return Recent[T]{capacity: capacity}
}

// Push returns a Recent with x as the newest item, dropping the oldest
// item if the list was full. The receiver is not modified.
func (r Recent[T]) Push(x T) Recent[T] {
	if r.capacity < 1 {
		panic("readmodel: Push on a zero Recent; create it with NewRecent")
	}
	items := make([]T, min(len(r.items)+1, r.capacity))
	items[0] = x
	copy(items[1:], r.items) // copies as many as fit: the oldest falls off
	return Recent[T]{items: items, capacity: r.capacity}
}

// Len returns the number of items, at most Cap.
func (r Recent[T]) Len() int { return len(r.items) }

// Cap returns the maximum number of items kept.
func (r Recent[T]) Cap() int { return r.capacity }

// At returns the i-th newest item: At(0) is the newest. It panics if i is
// out of range [0, Len).
func (r Recent[T]) At(i int) T { return r.items[i] }

// All returns an iterator over the items, newest first.
func (r Recent[T]) All() iter.Seq[T] {
	return func(yield func(T) bool) {
		for _, x := range r.items {
			if !yield(x) {
				return
			}
		}
	}
}

// Items returns the items newest first, in a new slice the caller may
// modify.
func (r Recent[T]) Items() []T { return append([]T(nil), r.items...) }

// recentJSON is the JSON form of a Recent.
type recentJSON[T any] struct {
	Cap   int `json:"cap"`
	Items []T `json:"items"`
}

// MarshalJSON encodes the list as {"cap":n,"items":[newest, ...]}, so that
// views holding one survive durable stores that encode values as JSON.
func (r Recent[T]) MarshalJSON() ([]byte, error) {
	items := r.items
	if items == nil {
		items = []T{} // "items":[] rather than null
	}
	return json.Marshal(recentJSON[T]{Cap: r.capacity, Items: items})
}

// UnmarshalJSON decodes the form written by MarshalJSON.
func (r *Recent[T]) UnmarshalJSON(data []byte) error {
	var v recentJSON[T]
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if v.Cap < 0 || len(v.Items) > v.Cap { // cap 0 with no items is the zero Recent
		return fmt.Errorf("readmodel: invalid Recent: cap %d with %d items", v.Cap, len(v.Items))
	}
	if len(v.Items) == 0 {
		v.Items = nil
	}
	*r = Recent[T]{items: v.Items, capacity: v.Cap}
	return nil
}
