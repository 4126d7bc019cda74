package readmodel

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkTree verifies the B-tree invariants of the tree rooted at root and
// that it holds exactly want (sorted).
func checkTree[T any](t *testing.T, o ordering[T], root *bnode[T], want []T) {
	t.Helper()
	if root == nil {
		require.Empty(t, want, "the tree is empty")
		return
	}
	require.NotEmpty(t, root.items, "root has no items")
	leafDepth := -1
	var walk func(n *bnode[T], depth int, isRoot bool) int
	walk = func(n *bnode[T], depth int, isRoot bool) int {
		require.LessOrEqual(t, len(n.items), btMaxItems, "items of a node at depth %d", depth)
		if !isRoot {
			require.GreaterOrEqual(t, len(n.items), btMinItems, "items of a node at depth %d", depth)
		}
		for i := 1; i < len(n.items); i++ {
			if o.cmp(n.items[i-1], n.items[i]) >= 0 {
				require.Failf(t, "node items out of order", "at depth %d: %v then %v", depth, n.items[i-1], n.items[i])
			}
		}
		total := len(n.items)
		if n.kids == nil {
			if leafDepth == -1 {
				leafDepth = depth
			}
			require.Equal(t, leafDepth, depth, "every leaf at the same depth")
		} else {
			require.Len(t, n.kids, len(n.items)+1, "kids of an inner node")
			for _, k := range n.kids {
				total += walk(k, depth+1, false)
			}
		}
		require.Equal(t, total, n.size, "node size")
		return total
	}
	walk(root, 0, true)
	var got []T
	all(root, func(x T) bool { got = append(got, x); return true })
	require.Equal(t, want, got, "items in the tree")
}

// TestBTreeAgainstReference applies random inserts and removes to the tree
// and to a sorted slice, checking invariants, results and every read
// operation along the way, and that old roots (snapshots held by readers)
// never change.
func TestBTreeAgainstReference(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed))
			o := ordering[int]{cmp: cmp.Compare[int]}
			var root *bnode[int]
			var ref []int
			type snapshot struct {
				root *bnode[int]
				want []int
			}
			var snaps []snapshot
			universe := 3000 // small enough for frequent hits and deep enough for 3 levels
			for step := range 20000 {
				x := rng.IntN(universe)
				i, present := slices.BinarySearch(ref, x)
				if rng.IntN(100) < 55 { // grow first, then churn around a steady size
					var added bool
					root, added = o.insert(root, x)
					if added == present { // hot loop: compare first, then fail
						require.Failf(t, "insert result wrong", "step %d: insert(%d) = %v, present %v", step, x, added, present)
					}
					if !present {
						ref = slices.Insert(ref, i, x)
					}
				} else {
					var removed bool
					root, removed = o.remove(root, x)
					if removed != present {
						require.Failf(t, "remove result wrong", "step %d: remove(%d) = %v, present %v", step, x, removed, present)
					}
					if present {
						ref = slices.Delete(ref, i, i+1)
					}
				}
				if has := o.has(root, x); has != slices.Contains(ref, x) {
					require.Failf(t, "has wrong", "step %d: has(%d) = %v", step, x, has)
				}
				if step%500 == 0 {
					checkTree(t, o, root, ref)
					snaps = append(snaps, snapshot{root, slices.Clone(ref)})
				}
				if step%97 == 0 {
					checkPages(t, o, root, ref, rng)
				}
			}
			checkTree(t, o, root, ref)
			for _, s := range snaps {
				checkTree(t, o, s.root, s.want)
			}
			// Drain to empty.
			for _, x := range slices.Clone(ref) {
				root, _ = o.remove(root, x)
			}
			require.Nil(t, root, "tree not empty after removing everything")
		})
	}
}

// checkPages compares appendAfter (through pageOf) with the reference.
func checkPages(t *testing.T, o ordering[int], root *bnode[int], ref []int, rng *rand.Rand) {
	t.Helper()
	pivot := rng.IntN(3100) - 50
	limit := rng.IntN(70)
	prefix := []int{-7} // appending must keep what dst holds
	got := pageOf(o, root, &pivot, limit, slices.Clone(prefix))
	start, found := slices.BinarySearch(ref, pivot)
	if found {
		start++
	}
	want := append(slices.Clone(prefix), ref[start:min(len(ref), start+limit)]...)
	require.Equal(t, want, got, "page after %d limit %d", pivot, limit)
	got = pageOf(o, root, nil, limit, nil)
	if want := ref[:min(len(ref), limit)]; len(want) > 0 {
		require.Equal(t, want, got, "first page limit %d", limit)
	} else {
		require.Empty(t, got, "first page limit %d", limit)
	}
	// Walking all pages visits every item once.
	var walked []int
	var cursor *int
	for {
		page := pageOf(o, root, cursor, 1+rng.IntN(40), nil)
		if len(page) == 0 {
			break
		}
		walked = append(walked, page...)
		cursor = &page[len(page)-1]
	}
	if len(ref) > 0 {
		require.Equal(t, ref, walked, "paging visits every item once")
	} else {
		require.Empty(t, walked, "paging an empty tree")
	}
}

// TestBTreeSequential covers the ascending and descending insertion orders
// that stress splits and merges at the edges.
func TestBTreeSequential(t *testing.T) {
	o := ordering[int]{cmp: cmp.Compare[int]}
	const n = 5000
	var root *bnode[int]
	var ref []int
	for i := range n {
		root, _ = o.insert(root, i)
		ref = append(ref, i)
	}
	checkTree(t, o, root, ref)
	for i := n - 1; i >= n/2; i-- { // remove from the right
		root, _ = o.remove(root, i)
	}
	checkTree(t, o, root, ref[:n/2])
	for i := range n / 4 { // and from the left
		root, _ = o.remove(root, i)
	}
	checkTree(t, o, root, ref[n/4:n/2])
	root = nil
	for i := n - 1; i >= 0; i-- {
		root, _ = o.insert(root, i)
	}
	checkTree(t, o, root, ref)
}

// TestBuild builds trees bottom-up from sorted runs of every size up to a
// few levels deep and checks the B-tree invariants.
func TestBuild(t *testing.T) {
	o := ordering[int]{cmp: cmp.Compare[int]}
	sizes := []int{0, 1, 2, btMaxItems - 1, btMaxItems, btMaxItems + 1, btMaxItems + 2, 2*btMaxItems + 1, 2*btMaxItems + 2}
	for n := 3; n < 40_000; n = n*3/2 + 1 {
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		items := make([]int, n)
		for i := range items {
			items[i] = 2 * i
		}
		root := build(items)
		checkTree(t, o, root, items[:n:n])
		if n > 0 {
			// The built tree works with the copy-on-write operations.
			root, _ = o.insert(root, 1)
			root, _ = o.remove(root, 0)
			want := append([]int{1}, items[1:]...)
			checkTree(t, o, root, want)
		}
	}
}

// TestSortedSetAddMany loads random batches (with duplicates and keys
// already present) and checks the set against a reference.
func TestSortedSetAddMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 1))
	s := NewSortedSet[int]()
	ref := map[int]bool{}
	for range 30 {
		if rng.IntN(3) == 0 {
			k := rng.IntN(20_000) // mix single adds in
			s.Add(k)
			ref[k] = true
		}
		batch := make([]int, rng.IntN(3000))
		absent := map[int]bool{}
		for i := range batch {
			batch[i] = rng.IntN(20_000)
			if !ref[batch[i]] {
				absent[batch[i]] = true
			}
		}
		before := s.t.root.Load()
		snapshot := slices.Collect(s.All())
		require.Equal(t, len(absent), s.AddMany(batch))
		for _, k := range batch {
			ref[k] = true
		}
		want := slices.Sorted(maps.Keys(ref))
		checkTree(t, s.t.ord, s.t.root.Load(), want)
		var old []int
		all(before, func(x int) bool { old = append(old, x); return true })
		require.Equal(t, snapshot, old, "AddMany changed a published snapshot")
	}
}

// TestInsertMany adds sorted batches of every size, clustered and spread,
// to trees of every size, checking the invariants, the items, and that the
// old root (a snapshot readers hold) is unchanged.
func TestInsertMany(t *testing.T) {
	o := ordering[int]{cmp: cmp.Compare[int]}
	rng := rand.New(rand.NewPCG(15, 2))
	for _, n := range []int{0, 1, btMaxItems, btMaxItems + 1, 100, 1000, 5000, 30_000} {
		items := make([]int, n)
		for i := range items {
			items[i] = 4 * i
		}
		root := build(slices.Clone(items))
		ref := map[int]bool{}
		for _, x := range items {
			ref[x] = true
		}
		for range 40 {
			var batch []int
			span := 1 + rng.IntN(4*n+10)
			lo := rng.IntN(4*n + 10)
			for range rng.IntN(300) {
				batch = append(batch, lo+rng.IntN(span)) // present or absent, clustered or spread
			}
			slices.Sort(batch)
			batch = slices.Compact(batch)
			absent := 0
			for _, k := range batch {
				if !ref[k] {
					absent++
				}
			}
			before := slices.Collect(func(yield func(int) bool) { all(root, yield) })
			got, added := o.insertMany(root, batch)
			require.Equal(t, absent, added)
			var still []int
			all(root, func(x int) bool { still = append(still, x); return true })
			require.Equal(t, before, still, "insertMany changed the old tree")
			for _, k := range batch {
				ref[k] = true
			}
			checkTree(t, o, got, slices.Sorted(maps.Keys(ref)))
			root = got
		}
	}
}
