package readmodel

import (
	"encoding/json"
	"fmt"
	"iter"
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
// backing array of Cap plus Cap/2 (at least one) slots that is filled
// from the front; a Recent is a window on it, and the only writes to the
// array are to slots past every window handed out so far. The first Push
// on the newest Recent of an array claims the next free slot (each slot
// has a flag set by compare-and-swap, so two Pushes on the same Recent,
// even from different goroutines, never claim the same slot) and writes
// there; any other Push (on an older Recent, or when the array is full)
// copies the newest Cap-1 items into a new array. A list that only grows
// along one line of versions, as a projection's does, therefore allocates
// once every Cap/2+1 pushes (one allocation: the flags live in the array)
// instead of on every push, while holding at most Cap/2 spare slots (one
// for Cap 1).
//
// The zero Recent has capacity 0 and Push panics on it; create one with
// [NewRecent].
type Recent[T any] struct {
	// arr is the backing array, possibly shared with other versions; the
	// window is arr[max(end-capacity, 0):end] (items are always packed
	// from the array's front).
	arr      []recentSlot[T]
	end      int
	capacity int
}

// recentSlot is one item of a backing array. claimed is set by the one
// Push allowed to write v; v is never written again, so readers of older
// windows never race with it.
type recentSlot[T any] struct {
	claimed atomic.Bool
	v       T
}

// recentSpare is how many slots past a full list a new backing array
// has: more spare slots mean fewer allocations per Push but more memory
// per list. Half the capacity keeps an array within 1.5 times the list
// (twice for capacity 1) and allocates once every capacity/2+1 pushes,
// which for the catalog's lists (5 and 3) is as often as twice the
// capacity with a separate claim counter did, at two allocations a time.
func recentSpare(capacity int) int { return max(1, capacity/2) }

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
	arr, end := r.arr, r.end
	if end >= len(arr) || !arr[end].claimed.CompareAndSwap(false, true) {
		// Start a new array with the newest capacity-1 items. Its slots
		// below end are never claimed (only arr[end] is), so their flags
		// stay unset.
		keep := min(r.Len(), r.capacity-1)
		arr = make([]recentSlot[T], r.capacity+recentSpare(r.capacity))
		for i := range keep {
			arr[i].v = r.arr[r.end-keep+i].v
		}
		end = keep
		arr[end].claimed.Store(true) // not shared yet; set for uniformity
	}
	arr[end].v = x
	return Recent[T]{arr: arr, end: end + 1, capacity: r.capacity}
}

// window returns the items, oldest first.
func (r Recent[T]) window() []recentSlot[T] {
	return r.arr[max(r.end-r.capacity, 0):r.end]
}

// Len returns the number of items, at most Cap.
func (r Recent[T]) Len() int { return min(r.end, r.capacity) }

// Cap returns the maximum number of items kept.
func (r Recent[T]) Cap() int { return r.capacity }

// At returns the i-th newest item: At(0) is the newest. It panics if i is
// out of range [0, Len).
func (r Recent[T]) At(i int) T {
	if uint(i) >= uint(r.Len()) {
		panic(fmt.Sprintf("readmodel: Recent.At(%d) with Len %d", i, r.Len()))
	}
	return r.arr[r.end-1-i].v
}

// All returns an iterator over the items, newest first.
func (r Recent[T]) All() iter.Seq[T] {
	return func(yield func(T) bool) {
		w := r.window()
		for i := len(w) - 1; i >= 0; i-- {
			if !yield(w[i].v) {
				return
			}
		}
	}
}

// Items returns the items newest first, in a new slice the caller may
// modify.
func (r Recent[T]) Items() []T {
	w := r.window()
	if len(w) == 0 {
		return nil
	}
	out := make([]T, len(w))
	for i := range w {
		out[len(out)-1-i] = w[i].v
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
	rec, err := RecentOf(v.Cap, v.Items)
	if err != nil {
		return err
	}
	*r = rec
	return nil
}

// RecentOf returns a Recent of the given capacity holding items, newest
// first (the order of Items), for codecs that store a Recent as its
// capacity and items (as MarshalJSON does). It copies the items, and
// allocates room for them only: the next Push starts a new array. It
// returns an error for a negative capacity or more items than it; capacity
// 0 with no items gives the zero Recent.
func RecentOf[T any](capacity int, newestFirst []T) (Recent[T], error) {
	if capacity < 0 || len(newestFirst) > capacity {
		return Recent[T]{}, fmt.Errorf("readmodel: invalid Recent: cap %d with %d items", capacity, len(newestFirst))
	}
	var arr []recentSlot[T]
	if len(newestFirst) > 0 {
		arr = make([]recentSlot[T], len(newestFirst))
		for i, x := range newestFirst {
			arr[len(arr)-1-i].v = x
		}
	}
	return Recent[T]{arr: arr, end: len(arr), capacity: capacity}, nil
}
