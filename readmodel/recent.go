package readmodel

import (
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"sync/atomic"
)

// Recent is a bounded list kept newest first, such as a product's five
// most recent reviews.
//
// It is an immutable value: a Recent never changes what it shows, and Push
// returns a new Recent, so a view holding one can be shared with readers
// (see [Map]) while a projection builds the next version.
//
// Push does not copy the list every time. Items live oldest first in a
// backing array of twice the capacity that is filled from the front; a
// Recent is a window on it, and the only writes to the array are to slots
// past every window handed out so far. The first Push on the newest Recent
// of an array claims the next free slot (an atomic compare-and-swap, so
// two Pushes on the same Recent, even from different goroutines, never
// claim the same slot) and writes there; any other Push (on an older
// Recent, or when the array is full) copies the newest Cap-1 items into a
// new array. A list that only grows along one line of versions, as a
// projection's does, therefore allocates once every Cap+1 pushes instead
// of on every push.
//
// The zero Recent has capacity 0 and Push panics on it; create one with
// [NewRecent].
type Recent[T any] struct {
	// items is the window, oldest first, with no spare capacity, so that
	// appending to it can never write into the shared array.
	items    []T
	buf      *recentBuf[T] // nil until the first Push
	end      int           // items ends at buf.arr[end]
	capacity int
}

// recentBuf is a backing array shared by the versions of one list.
type recentBuf[T any] struct {
	claimed atomic.Int64 // slots of arr written (or being written): never decreases
	arr     []T
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
// item if the list was full. The receiver is not modified, nor is any item
// it or any other Recent shows.
func (r Recent[T]) Push(x T) Recent[T] {
	if r.capacity < 1 {
		panic("readmodel: Push on a zero Recent; create it with NewRecent")
	}
	b, end := r.buf, r.end
	if b == nil || end >= len(b.arr) || !b.claimed.CompareAndSwap(int64(end), int64(end+1)) {
		// Start a new array with the newest capacity-1 items.
		keep := min(len(r.items), r.capacity-1)
		b = &recentBuf[T]{arr: make([]T, 2*r.capacity)}
		end = copy(b.arr, r.items[len(r.items)-keep:])
		b.claimed.Store(int64(end + 1))
	}
	b.arr[end] = x
	end++
	lo := max(end-r.capacity, 0)
	return Recent[T]{items: b.arr[lo:end:end], buf: b, end: end, capacity: r.capacity}
}

// Len returns the number of items, at most Cap.
func (r Recent[T]) Len() int { return len(r.items) }

// Cap returns the maximum number of items kept.
func (r Recent[T]) Cap() int { return r.capacity }

// At returns the i-th newest item: At(0) is the newest. It panics if i is
// out of range [0, Len).
func (r Recent[T]) At(i int) T {
	if uint(i) >= uint(len(r.items)) {
		panic(fmt.Sprintf("readmodel: Recent.At(%d) with Len %d", i, len(r.items)))
	}
	return r.items[len(r.items)-1-i]
}

// All returns an iterator over the items, newest first.
func (r Recent[T]) All() iter.Seq[T] {
	return func(yield func(T) bool) {
		for i := len(r.items) - 1; i >= 0; i-- {
			if !yield(r.items[i]) {
				return
			}
		}
	}
}

// Items returns the items newest first, in a new slice the caller may
// modify.
func (r Recent[T]) Items() []T {
	if len(r.items) == 0 {
		return nil
	}
	out := make([]T, len(r.items))
	for i, x := range r.items {
		out[len(out)-1-i] = x
	}
	return out
}

// recentJSON is the JSON form of a Recent.
type recentJSON[T any] struct {
	Cap   int `json:"cap"`
	Items []T `json:"items"`
}

// MarshalJSON encodes the list as {"cap":n,"items":[newest, ...]}, so that
// views holding one survive durable stores that encode values as JSON.
func (r Recent[T]) MarshalJSON() ([]byte, error) {
	items := r.Items()
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
	slices.Reverse(v.Items) // oldest first, as Recent keeps them
	if len(v.Items) == 0 {
		v.Items = nil
	}
	*r = Recent[T]{items: v.Items[:len(v.Items):len(v.Items)], capacity: v.Cap}
	return nil
}
