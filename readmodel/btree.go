package readmodel

import (
	"slices"
	"sync"
	"sync/atomic"
)

// A persistent (copy-on-write) B-tree: the ordered structure behind
// SortedSet and Index, whose readers page through the whole order.
// (Ranking's tree is not persistent: its readers almost only ask for the
// best few entries while writers move keys constantly, so it keeps the
// full order in a B+tree that only writers touch, changed in place, and
// publishes an immutable snapshot of the top; see ranking.go.)
//
// Why not a lock-free skiplist here? It would give each reader a walk over
// a list that writers change under its feet. Inserts and removals alone
// are fine, but a reader paging while keys come and go sees no single
// instant (Len and a Page would disagree), and any move of a key (a
// removal plus an insertion) can be passed before the insertion and
// reached again after the removal, so the reader misses it or sees it
// twice. Fixing that needs readers to register with writers, which costs
// every reader a write to shared memory.
//
// A persistent tree never changes a published node. A writer copies the
// path from the root to the nodes it changes (O(log n) nodes) and publishes
// the new root with one atomic store. A reader loads the root once and then
// reads an immutable snapshot: no locks, no writes to shared memory, no
// retries, and every read (Page, Keys, All, Len) reflects one instant. Wide
// nodes keep the tree shallow (about 5 levels for a million items) and make
// scans sequential in memory, so reads are cheap too. The price is that each
// write allocates the copied path (a few KB); writers are expected to be
// projections, which run far less often than queries.

const (
	btDegree   = 16             // minimum number of children of an inner node other than the root
	btMaxItems = 2*btDegree - 1 // a node holding more is split
	btMinItems = btDegree - 1   // a non-root node holding fewer is refilled from a sibling
)

// bnode is an immutable B-tree node once it has been published.
type bnode[T any] struct {
	items []T         // sorted; never modified after publication
	kids  []*bnode[T] // nil in a leaf; len(items)+1 children in an inner node
	size  int         // number of items in this subtree
}

// ordering holds the comparison that orders a tree's items; its methods
// implement the tree operations on explicit roots, so that one tree can be
// published by an atomic pointer (SortedSet, through cowTree) or stored as
// a Map value (Index, one tree per group). Write methods return a new root and never modify the old
// one; a nil root is the empty tree.
type ordering[T any] struct {
	cmp func(a, b T) int
}

// newNode returns a node over items and kids, computing its size.
func newNode[T any](items []T, kids []*bnode[T]) *bnode[T] {
	n := &bnode[T]{items: items, kids: kids, size: len(items)}
	for _, k := range kids {
		n.size += k.size
	}
	return n
}

// search returns the index of the first item not less than x, and whether
// that item equals x.
func (o ordering[T]) search(items []T, x T) (int, bool) {
	lo, hi := 0, len(items)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if o.cmp(items[mid], x) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < len(items) && o.cmp(items[lo], x) == 0
}

// has reports whether the tree rooted at n holds an item equal to x.
func (o ordering[T]) has(n *bnode[T], x T) bool {
	for n != nil {
		i, found := o.search(n.items, x)
		if found {
			return true
		}
		if n.kids == nil {
			return false
		}
		n = n.kids[i]
	}
	return false
}

// insert returns the tree with x added, and whether it was added (false if
// an equal item was already present, in which case root is returned).
func (o ordering[T]) insert(root *bnode[T], x T) (*bnode[T], bool) {
	if root == nil {
		return &bnode[T]{items: []T{x}, size: 1}, true
	}
	left, mid, right, added := o.ins(root, x)
	if !added {
		return root, false
	}
	if right != nil {
		return newNode([]T{mid}, []*bnode[T]{left, right}), true
	}
	return left, true
}

// ins adds x below n. If the new node overflows it is split, and ins
// returns both halves and the separating item.
func (o ordering[T]) ins(n *bnode[T], x T) (left *bnode[T], mid T, right *bnode[T], added bool) {
	i, found := o.search(n.items, x)
	if found {
		return n, mid, nil, false
	}
	if n.kids == nil {
		return o.split(insertAt(n.items, i, x), nil)
	}
	kl, kmid, kr, added := o.ins(n.kids[i], x)
	if !added {
		return n, mid, nil, false
	}
	if kr == nil {
		kids := clone(n.kids)
		kids[i] = kl
		// The items are unchanged and immutable, so the copy may share them.
		return &bnode[T]{items: n.items, kids: kids, size: n.size + 1}, mid, nil, true
	}
	kids := make([]*bnode[T], len(n.kids)+1)
	copy(kids, n.kids[:i])
	kids[i], kids[i+1] = kl, kr
	copy(kids[i+2:], n.kids[i+1:])
	return o.split(insertAt(n.items, i, kmid), kids)
}

// split makes a node of items and kids, splitting it in two around its
// middle item if it is too big.
func (o ordering[T]) split(items []T, kids []*bnode[T]) (left *bnode[T], mid T, right *bnode[T], added bool) {
	if len(items) <= btMaxItems {
		return newNode(items, kids), mid, nil, true
	}
	m := len(items) / 2
	// Full slice expressions: the halves share a backing array, and neither
	// may ever append into the other's part.
	if kids == nil {
		return newNode(items[:m:m], nil), items[m], newNode(items[m+1:], nil), true
	}
	return newNode(items[:m:m], kids[:m+1:m+1]), items[m], newNode(items[m+1:], kids[m+1:]), true
}

// remove returns the tree without the item equal to x, and whether there
// was one (if not, root is returned).
func (o ordering[T]) remove(root *bnode[T], x T) (*bnode[T], bool) {
	if root == nil {
		return nil, false
	}
	n, removed := o.del(root, x)
	if !removed {
		return root, false
	}
	if len(n.items) == 0 { // the root may shrink to nothing or to its only child
		if n.kids == nil {
			return nil, true
		}
		return n.kids[0], true
	}
	return n, true
}

// del removes x from the subtree n. The returned node may hold fewer than
// btMinItems items; the caller rebalances it.
func (o ordering[T]) del(n *bnode[T], x T) (*bnode[T], bool) {
	i, found := o.search(n.items, x)
	if n.kids == nil {
		if !found {
			return n, false
		}
		return newNode(removeAt(n.items, i), nil), true
	}
	items := n.items
	var kid *bnode[T]
	if found {
		// Replace x by its predecessor, the largest item of the left subtree.
		var pred T
		kid, pred = o.delMax(n.kids[i])
		items = clone(items)
		items[i] = pred
	} else {
		var removed bool
		if kid, removed = o.del(n.kids[i], x); !removed {
			return n, false
		}
	}
	return o.rebalance(items, n.kids, i, kid), true
}

// delMax removes the largest item of the subtree n and returns it.
func (o ordering[T]) delMax(n *bnode[T]) (*bnode[T], T) {
	last := len(n.items) - 1
	if n.kids == nil {
		return newNode(n.items[:last:last], nil), n.items[last]
	}
	kid, maxItem := o.delMax(n.kids[last+1])
	return o.rebalance(n.items, n.kids, last+1, kid), maxItem
}

// rebalance returns a node of items and kids with kids[i] replaced by kid,
// which lost one item. If kid has become too small it borrows an item
// through the parent from a sibling that can spare one, or else merges
// with a sibling. items and kids belong to published nodes and are copied,
// never modified.
func (o ordering[T]) rebalance(items []T, oldKids []*bnode[T], i int, kid *bnode[T]) *bnode[T] {
	kids := clone(oldKids)
	kids[i] = kid
	if len(kid.items) >= btMinItems {
		return newNode(items, kids)
	}
	switch {
	case i > 0 && len(kids[i-1].items) > btMinItems:
		// Rotate right: the left sibling's last item moves up, the
		// separator moves down to the front of kid.
		l := kids[i-1]
		ln := len(l.items) - 1
		items = clone(items)
		kids[i] = newNode(insertAt(kid.items, 0, items[i-1]), prependKid(l.kids, kid.kids))
		items[i-1] = l.items[ln]
		kids[i-1] = newNode(l.items[:ln:ln], dropLastKid(l.kids))
		return newNode(items, kids)
	case i < len(kids)-1 && len(kids[i+1].items) > btMinItems:
		// Rotate left: the mirror image.
		r := kids[i+1]
		items = clone(items)
		kids[i] = newNode(insertAt(kid.items, len(kid.items), items[i]), appendKid(kid.kids, r.kids))
		items[i] = r.items[0]
		kids[i+1] = newNode(r.items[1:], dropFirstKid(r.kids))
		return newNode(items, kids)
	default:
		// Merge kids[j], items[j] and kids[j+1]; both siblings are at the
		// minimum, so the result fits in one node.
		j := i
		if j == len(kids)-1 {
			j--
		}
		l, r := kids[j], kids[j+1]
		merged := make([]T, 0, len(l.items)+1+len(r.items))
		merged = append(merged, l.items...)
		merged = append(merged, items[j])
		merged = append(merged, r.items...)
		var mergedKids []*bnode[T]
		if l.kids != nil {
			mergedKids = make([]*bnode[T], 0, len(l.kids)+len(r.kids))
			mergedKids = append(mergedKids, l.kids...)
			mergedKids = append(mergedKids, r.kids...)
		}
		newKids := make([]*bnode[T], 0, len(kids)-1)
		newKids = append(newKids, kids[:j]...)
		newKids = append(newKids, newNode(merged, mergedKids))
		newKids = append(newKids, kids[j+2:]...)
		return newNode(removeAt(items, j), newKids)
	}
}

// appendAfter appends to dst, in order, the items of the subtree n that
// are greater than pivot (all of them if !bounded), stopping when len(dst)
// reaches stop. Only the leftmost descent needs the pivot: every subtree
// to the right of an item greater than pivot is entirely greater.
func (o ordering[T]) appendAfter(n *bnode[T], pivot T, bounded bool, stop int, dst []T) []T {
	if n == nil || len(dst) >= stop {
		return dst
	}
	i := 0
	if bounded {
		var found bool
		if i, found = o.search(n.items, pivot); found {
			// items[i] == pivot: start after it, and everything in
			// kids[i+1] is greater.
			i++
			bounded = false
		}
	}
	for ; ; i++ {
		if n.kids != nil {
			if dst = o.appendAfter(n.kids[i], pivot, bounded, stop, dst); len(dst) >= stop {
				return dst
			}
		}
		if i == len(n.items) {
			return dst
		}
		if dst = append(dst, n.items[i]); len(dst) >= stop {
			return dst
		}
		bounded = false
	}
}

// all yields the items of the subtree n in order, reporting whether the
// caller should go on.
func all[T any](n *bnode[T], yield func(T) bool) bool {
	if n == nil {
		return true
	}
	for i, x := range n.items {
		if n.kids != nil && !all(n.kids[i], yield) {
			return false
		}
		if !yield(x) {
			return false
		}
	}
	return n.kids == nil || all(n.kids[len(n.items)], yield)
}

// size returns the number of items of the tree rooted at n.
func size[T any](n *bnode[T]) int {
	if n == nil {
		return 0
	}
	return n.size
}

// build returns a tree holding items, which must be sorted and free of
// duplicates, built bottom-up in O(n): as even as the node size limits
// allow, every leaf at the same depth. A nil root is the empty tree.
func build[T any](items []T) *bnode[T] {
	if len(items) == 0 {
		return nil
	}
	// One copy of items backs every leaf (each leaf's slice is capped at
	// its own items, so a later insert copies rather than overwrites).
	nodes, seps := leaves(clone(items))
	for len(nodes) > 1 {
		nodes, seps = group(nodes, seps)
	}
	return nodes[0]
}

// insertAt returns a new slice: s with x inserted at index i.
func insertAt[T any](s []T, i int, x T) []T {
	out := make([]T, len(s)+1)
	copy(out, s[:i])
	out[i] = x
	copy(out[i+1:], s[i:])
	return out
}

// removeAt returns a new slice: s without its element at index i.
func removeAt[T any](s []T, i int) []T {
	out := make([]T, len(s)-1)
	copy(out, s[:i])
	copy(out[i:], s[i+1:])
	return out
}

// clone returns a copy of s with the same length and capacity.
func clone[T any](s []T) []T {
	return append(make([]T, 0, len(s)), s...)
}

// The kid helpers handle leaves, whose kids are nil, and return new slices.

func prependKid[T any](from, to []*bnode[T]) []*bnode[T] {
	if from == nil {
		return nil
	}
	return insertAt(to, 0, from[len(from)-1])
}

func appendKid[T any](to, from []*bnode[T]) []*bnode[T] {
	if from == nil {
		return nil
	}
	return insertAt(to, len(to), from[0])
}

func dropLastKid[T any](kids []*bnode[T]) []*bnode[T] {
	if kids == nil {
		return nil
	}
	n := len(kids) - 1
	return kids[:n:n]
}

func dropFirstKid[T any](kids []*bnode[T]) []*bnode[T] {
	if kids == nil {
		return nil
	}
	return kids[1:]
}

// cowTree is an ordered set published through one atomic pointer to an
// immutable root, with writers serialised by a mutex. SortedSet is a thin
// wrapper around it.
type cowTree[T any] struct {
	mu   sync.Mutex // serialises writers; readers never take it
	root atomic.Pointer[bnode[T]]
	ord  ordering[T]
}

// add inserts x and reports whether it was absent.
func (t *cowTree[T]) add(x T) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	root, added := t.ord.insert(t.root.Load(), x)
	if added {
		t.root.Store(root)
	}
	return added
}

// remove deletes x and reports whether it was present.
func (t *cowTree[T]) remove(x T) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	root, removed := t.ord.remove(t.root.Load(), x)
	if removed {
		t.root.Store(root)
	}
	return removed
}

// addSorted inserts keys, which must be sorted (duplicates allowed) and
// which it may keep and modify, and publishes the result with one store,
// instead of copying a path per key: it merges them with the current items
// and builds a new tree, O(n + m), or, for a few keys into a big tree,
// copies the paths to them, each node once. It reports how many keys were
// absent.
func (t *cowTree[T]) addSorted(add []T) int {
	add = slices.CompactFunc(add, func(a, b T) bool { return t.ord.cmp(a, b) == 0 })
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.root.Load()
	if len(add)*8 < size(old) {
		// A few keys into a big tree: copy only the paths to them.
		root, added := t.ord.insertMany(old, add)
		if added > 0 {
			t.root.Store(root)
		}
		return added
	}
	merged := make([]T, 0, size(old)+len(add))
	i := 0
	all(old, func(x T) bool {
		for i < len(add) && t.ord.cmp(add[i], x) < 0 {
			merged = append(merged, add[i])
			i++
		}
		if i < len(add) && t.ord.cmp(add[i], x) == 0 {
			i++ // already present
		}
		merged = append(merged, x)
		return true
	})
	merged = append(merged, add[i:]...)
	if added := len(merged) - size(old); added > 0 {
		t.root.Store(build(merged))
		return added
	}
	return 0
}

// clear empties the tree. Readers holding the old root keep their snapshot.
func (t *cowTree[T]) clear() {
	t.mu.Lock()
	t.root.Store(nil)
	t.mu.Unlock()
}

// insertMany returns the tree with keys added, which must be sorted and
// free of duplicates, and how many were absent. It copies each node on the
// paths to the new keys once, however many keys land below it, instead of
// copying a path per key as insert does: keys that sort close together
// (a batch of a projection) share most of their path.
func (o ordering[T]) insertMany(root *bnode[T], keys []T) (*bnode[T], int) {
	if len(keys) == 0 {
		return root, 0
	}
	if root == nil {
		return build(slices.Clone(keys)), len(keys)
	}
	nodes, seps, added := o.insMany(root, keys)
	if added == 0 {
		return root, 0
	}
	for len(nodes) > 1 {
		nodes, seps = group(nodes, seps)
	}
	return nodes[0], added
}

// insMany adds keys (sorted, no duplicates) below n. It returns the node
// that replaces n, or, when that overflowed, several nodes with the
// separators between them; n itself when nothing was added.
func (o ordering[T]) insMany(n *bnode[T], keys []T) (nodes []*bnode[T], seps []T, added int) {
	if n.kids == nil {
		merged := make([]T, 0, len(n.items)+len(keys))
		i := 0
		for _, k := range keys {
			for i < len(n.items) && o.cmp(n.items[i], k) < 0 {
				merged = append(merged, n.items[i])
				i++
			}
			if i < len(n.items) && o.cmp(n.items[i], k) == 0 {
				continue // already present
			}
			merged = append(merged, k)
			added++
		}
		if added == 0 {
			return []*bnode[T]{n}, nil, 0
		}
		merged = append(merged, n.items[i:]...)
		nodes, seps = leaves(merged)
		return nodes, seps, added
	}
	items := make([]T, 0, len(n.items)+1)
	kids := make([]*bnode[T], 0, len(n.kids)+1)
	next := 0 // the first kid not yet copied into kids
	for len(keys) > 0 {
		i, found := o.search(n.items, keys[0])
		if found {
			keys = keys[1:] // a separator: already present
			continue
		}
		// keys[:j] all go below kid i: they sort before items[i].
		j := len(keys)
		if i < len(n.items) {
			j, _ = slices.BinarySearchFunc(keys, n.items[i], o.cmp)
		}
		for ; next < i; next++ {
			kids = append(kids, n.kids[next])
			items = append(items, n.items[next])
		}
		kn, ks, a := o.insMany(n.kids[i], keys[:j])
		kids = append(kids, kn...)
		items = append(items, ks...)
		if i < len(n.items) {
			items = append(items, n.items[i])
		}
		next = i + 1
		added += a
		keys = keys[j:]
	}
	if added == 0 {
		return []*bnode[T]{n}, nil, 0
	}
	for ; next < len(n.kids); next++ {
		kids = append(kids, n.kids[next])
		if next < len(n.items) {
			items = append(items, n.items[next])
		}
	}
	if len(kids) <= 2*btDegree {
		return []*bnode[T]{newNode(items, kids)}, nil, added
	}
	nodes, seps = group(kids, items)
	return nodes, seps, added
}

// leaves splits sorted items into as few leaves as the size limit allows,
// evenly (as build does), with the separators between them.
func leaves[T any](items []T) ([]*bnode[T], []T) {
	if len(items) <= btMaxItems {
		return []*bnode[T]{newNode(items, nil)}, nil
	}
	n := (len(items) + btMaxItems + 1) / (btMaxItems + 1)
	nodes := make([]*bnode[T], 0, n)
	seps := make([]T, 0, n-1)
	rest := items
	for i := range n {
		left := n - i
		k := (len(rest) - (left - 1)) / left
		nodes = append(nodes, newNode(rest[:k:k], nil))
		if left > 1 {
			seps = append(seps, rest[k])
			rest = rest[k+1:]
		}
	}
	return nodes, seps
}

// group puts nodes (with seps between them) evenly under as few parents
// of at most 2*btDegree children as possible, and returns the parents and
// the separators between them.
func group[T any](nodes []*bnode[T], seps []T) ([]*bnode[T], []T) {
	m := len(nodes)
	groups := (m + 2*btDegree - 1) / (2 * btDegree)
	parents := make([]*bnode[T], 0, groups)
	up := make([]T, 0, groups-1)
	at := 0
	for j := range groups {
		c := (m - at) / (groups - j)
		parents = append(parents, newNode(clone(seps[at:at+c-1]), clone(nodes[at:at+c])))
		if j < groups-1 {
			up = append(up, seps[at+c-1])
		}
		at += c
	}
	return parents, up
}
