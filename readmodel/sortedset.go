package readmodel

import (
	"cmp"
	"iter"
	"slices"
)

// SortedSet is a set of keys kept in ascending order, for secondary
// indexes such as "products in stock" that are listed page by page.
//
// Reads (Contains, Len, Page, All) take no lock and never wait for a
// writer: each one works on an immutable snapshot of the whole set, so a
// page never shows a key twice or half-applied changes. Add, Remove and
// Clear are serialised by a mutex and cost O(log n) time plus the
// allocation of the copied tree path.
//
// A SortedSet must be created with [NewSortedSet] and must not be copied
// after first use.
type SortedSet[K cmp.Ordered] struct {
	t cowTree[K]
}

// NewSortedSet returns an empty SortedSet ordered by [cmp.Compare].
func NewSortedSet[K cmp.Ordered]() *SortedSet[K] {
	s := new(SortedSet[K])
	s.t.ord.cmp = cmp.Compare[K]
	return s
}

// Add inserts key and reports whether it was absent.
func (s *SortedSet[K]) Add(key K) bool { return s.t.add(key) }

// AddMany inserts keys, in any order (duplicates and keys already present
// are fine), and returns how many were absent. Readers see all of them
// appear at once. For m keys into a set of n, it rebuilds the set in
// O(n + m log m) when m is a large share of n (loading a rebuilt view's
// index), else it copies each tree node on the paths to the keys once,
// which for keys that sort close together (a projection's batch) costs far
// less than m calls of Add, each copying a whole path.
func (s *SortedSet[K]) AddMany(keys []K) int {
	if len(keys) == 0 {
		return 0
	}
	// Sorted here, where K is known to be ordered: one < per comparison.
	add := slices.Clone(keys)
	slices.Sort(add)
	return s.t.addSorted(add)
}

// Remove deletes key and reports whether it was present.
func (s *SortedSet[K]) Remove(key K) bool { return s.t.remove(key) }

// Contains reports whether key is in the set.
func (s *SortedSet[K]) Contains(key K) bool { return s.t.ord.has(s.t.root.Load(), key) }

// Len returns the number of keys.
func (s *SortedSet[K]) Len() int { return size(s.t.root.Load()) }

// Clear removes every key.
func (s *SortedSet[K]) Clear() { s.t.clear() }

// Page appends the first page to dst: up to limit keys, the smallest
// first. It returns the extended slice. Fetch the next page with
// PageAfter, passing the last key of this one.
//
// Page costs O(log n + limit) and allocates nothing when dst has room.
func (s *SortedSet[K]) Page(limit int, dst []K) []K {
	return pageOf(s.t.ord, s.t.root.Load(), nil, limit, dst)
}

// PageAfter appends to dst, in ascending order, up to limit keys strictly
// greater than after (which need not be in the set) and returns the
// extended slice. To page through the set, start with Page and pass the
// last key of each page as after.
//
// PageAfter costs O(log n + limit) and allocates nothing when dst has
// room. Keys added or removed between two calls are reflected by the later
// call, so paging never repeats or skips a key that stays in the set.
func (s *SortedSet[K]) PageAfter(after K, limit int, dst []K) []K {
	return pageOf(s.t.ord, s.t.root.Load(), &after, limit, dst)
}

// All returns an iterator over a snapshot of the keys in ascending order,
// taken when iteration starts.
func (s *SortedSet[K]) All() iter.Seq[K] {
	return func(yield func(K) bool) { all(s.t.root.Load(), yield) }
}

// pageOf implements Page (after == nil: from the smallest key) and
// PageAfter for the tree rooted at root.
func pageOf[K any](o ordering[K], root *bnode[K], after *K, limit int, dst []K) []K {
	if limit <= 0 || root == nil {
		return dst
	}
	limit = min(limit, root.size) // also keeps len(dst)+limit from overflowing
	if after == nil {
		var none K
		return o.appendAfter(root, none, false, len(dst)+limit, dst)
	}
	return o.appendAfter(root, *after, true, len(dst)+limit, dst)
}
