package readmodel

import (
	"cmp"
	"iter"
	"slices"
)

// Index maps groups to sorted sets of keys, for secondary indexes such as
// "products by seller" or "reviews by product". A group exists while it
// holds at least one key.
//
// Reads (Contains, Len, Keys, Page, All, Groups, GroupCount) take no lock and never wait for a
// writer: each one looks the group up like [Map.Load] and then works on an
// immutable snapshot of that group's keys. Writers of different groups
// rarely contend (they lock one of many shards); writers of the same group
// are serialised. A write costs O(log n) in the size of the group plus the
// allocation of the copied tree path.
//
// An Index must be created with [NewIndex] and must not be copied after
// first use.
type Index[G comparable, K cmp.Ordered] struct {
	groups Map[G, *bnode[K]] // group -> root of an immutable tree of its keys
	ord    ordering[K]
}

// NewIndex returns an empty Index.
func NewIndex[G comparable, K cmp.Ordered]() *Index[G, K] {
	x := new(Index[G, K])
	x.groups.init()
	x.ord.cmp = cmp.Compare[K]
	return x
}

// Add puts key in group and reports whether it was absent.
func (x *Index[G, K]) Add(group G, key K) bool {
	added := false
	x.groups.update(group, func(root *bnode[K], _ bool) (*bnode[K], updateOp) {
		root, added = x.ord.insert(root, key)
		if !added {
			return nil, opNone
		}
		return root, opStore
	})
	return added
}

// AddMany puts keys in group, in any order (duplicates and keys already
// present are fine), and returns how many were absent. Readers see all of
// them appear at once. It copies each tree node on the paths to the keys
// once, and builds the group's tree bottom-up when the group is new (a
// rebuilt view loading its index), instead of copying a path per key as
// calls of Add would.
func (x *Index[G, K]) AddMany(group G, keys []K) int {
	if len(keys) == 0 {
		return 0
	}
	add := slices.Clone(keys)
	slices.Sort(add) // K is ordered: compares with < alone
	add = slices.CompactFunc(add, func(a, b K) bool { return x.ord.cmp(a, b) == 0 })
	added := 0
	x.groups.update(group, func(root *bnode[K], _ bool) (*bnode[K], updateOp) {
		root, added = x.ord.insertMany(root, add)
		if added == 0 {
			return nil, opNone
		}
		return root, opStore
	})
	return added
}

// Remove takes key out of group and reports whether it was there. The
// group disappears with its last key.
func (x *Index[G, K]) Remove(group G, key K) bool {
	removed := false
	x.groups.update(group, func(root *bnode[K], _ bool) (*bnode[K], updateOp) {
		root, removed = x.ord.remove(root, key)
		switch {
		case !removed:
			return nil, opNone
		case root == nil:
			return nil, opDelete
		default:
			return root, opStore
		}
	})
	return removed
}

// Contains reports whether key is in group.
func (x *Index[G, K]) Contains(group G, key K) bool {
	root, _ := x.groups.Load(group)
	return x.ord.has(root, key)
}

// Len returns the number of keys in group.
func (x *Index[G, K]) Len(group G) int {
	root, _ := x.groups.Load(group)
	return size(root)
}

// Keys appends all keys of group to dst in ascending order and returns the
// extended slice. It allocates nothing when dst has room.
func (x *Index[G, K]) Keys(group G, dst []K) []K {
	root, _ := x.groups.Load(group)
	return pageOf(x.ord, root, nil, size(root), dst)
}

// Page appends the first page of group to dst: up to limit keys, the
// smallest first (see [SortedSet.Page]).
func (x *Index[G, K]) Page(group G, limit int, dst []K) []K {
	root, _ := x.groups.Load(group)
	return pageOf(x.ord, root, nil, limit, dst)
}

// PageAfter appends up to limit keys of group strictly greater than after
// to dst in ascending order, with the paging rules of
// [SortedSet.PageAfter].
func (x *Index[G, K]) PageAfter(group G, after K, limit int, dst []K) []K {
	root, _ := x.groups.Load(group)
	return pageOf(x.ord, root, &after, limit, dst)
}

// All returns an iterator over a snapshot of the keys of group in
// ascending order, taken when iteration starts.
func (x *Index[G, K]) All(group G) iter.Seq[K] {
	return func(yield func(K) bool) {
		root, _ := x.groups.Load(group)
		all(root, yield)
	}
}

// GroupCount returns the number of non-empty groups.
func (x *Index[G, K]) GroupCount() int { return x.groups.Len() }

// Groups returns an iterator over the non-empty groups, such as every
// seller that has products, in no particular order. Like [Map.Range] it is
// weakly consistent: it takes no lock and does not block writers, yields
// no group twice, and yields every group that holds keys for the whole
// iteration; a group created or emptied concurrently may or may not be
// yielded. Read a group's keys with [Index.Keys] or [Index.All] (a group
// emptied since it was yielded reads as empty).
func (x *Index[G, K]) Groups() iter.Seq[G] {
	return func(yield func(G) bool) {
		x.groups.Range(func(group G, _ *bnode[K]) bool { return yield(group) })
	}
}

// Clear removes every group.
func (x *Index[G, K]) Clear() { x.groups.Clear() }
