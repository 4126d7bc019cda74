package readmodel

import (
	"cmp"
	"iter"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Ranked is one entry of a [Ranking].
type Ranked[K cmp.Ordered] struct {
	Key   K       // the ranked key, such as a product ID
	Score float64 // higher ranks first
}

// RankingTopCache is how many of the best entries a [Ranking] keeps in a
// published snapshot. Top(n) for n up to this many reads the snapshot
// without a lock; larger n, and All, read the full order under the
// writer's lock.
const RankingTopCache = 128

// Ranking is an ordered index from keys to scores, for views such as "top
// rated" or "best sellers": highest score first, ties broken by ascending
// key. Reading the best k entries costs O(k), not a sort of every key per
// query.
//
// The full order lives in a B+tree that only writers touch, so a Set
// moves an entry in place in O(log n) time, allocating only when a node of
// the tree splits (once per many inserts). Whenever a write changes the
// best RankingTopCache entries, the writer publishes a new immutable
// snapshot of them with one atomic store. Top(n) for n up to
// RankingTopCache therefore takes no lock, never waits for a writer, and
// always returns a sorted list without duplicates that shows every entry
// either before or after a concurrent Set, never in between. Score reads a
// separate lock-free key index that is updated just after the ordering, so
// a Score racing with a Set of the same key may return the previous score
// for an instant. Len is an atomic counter. Top beyond RankingTopCache and
// All take the writer's lock for a consistent walk of the full order.
//
// Scores are ordered by [cmp.Compare]: NaN ranks below every other score,
// and -0 ties with +0.
//
// A Ranking must be created with [NewRanking] and must not be copied after
// first use.
type Ranking[K cmp.Ordered] struct {
	mu     sync.Mutex                  // serialises writers and full-order reads
	root   *rbNode[K]                  // never nil; only writers, under mu, use the tree
	strKey bool                        // K is string: rankOrd.pfx holds a key's first bytes
	scores Map[K, rankScore]           // key index for Set, Remove and Score
	top    atomic.Pointer[[]Ranked[K]] // the best RankingTopCache entries
	n      atomic.Int64
}

// rankScore is a key's score, its float64 bits, as the key index holds
// it. Unlike other Map values it is not immutable: a move rewrites bits in
// place in the key's pair (scoreOf), with atomic stores that Score reads
// with atomic loads, so that a move costs no allocation. That is safe
// because the Ranking only ever reaches the pairs through lookup: it never
// calls the Map methods that copy values (Load, Update, Range) and never
// replaces a live key's pair.
type rankScore struct{ bits uint64 }

// scoreOf returns where the key index keeps key's score, nil if key is
// not ranked.
func (r *Ranking[K]) scoreOf(key K) *uint64 {
	if p := r.scores.lookup(key); p != nil {
		return &p.val.bits
	}
	return nil
}

// The tree behind a Ranking, and why.
//
// A write searches the full order (twice for a move: out of the old
// place, into the new), and on a ranking much bigger than the CPU caches a
// search is bound by cache misses. A skiplist, which Ranking used before,
// takes a miss per node it visits (some 20 at 100K keys), and with scores
// that tie a lot, as ratings do, most of its comparisons also follow a
// string key into the heap. A B+tree node packs the positions of up to
// rbMax entries in one array (rankOrd: the score as an integer that sorts
// best first and, for string keys, the key's first 8 bytes), so a search
// reads three or four nodes, the upper ones shared by every search and
// cached, and binary-searches one contiguous array in each; it compares
// whole keys only when two entries tie on score and first 8 bytes. Nodes
// are changed in place: readers never see the tree, only the published top
// snapshot, so nothing needs copying.
const (
	rbMax  = 64            // entries of a leaf, children of an inner node
	rbMin  = rbMax / 4     // a node other than the root holding fewer is refilled from a sibling
	rbFill = rbMax * 3 / 4 // how full a bulk load packs its nodes, leaving room for inserts
)

// rankOrd is the part of an entry's position that nodes pack: the tree is
// ordered by (rk, pfx, key) ascending, which is the ranking's best-first
// order (descending score, then ascending key).
type rankOrd struct {
	rk  uint64 // the score, as rankKey maps it
	pfx uint64 // a string key's first 8 bytes (keyPrefix); 0 for other keys
}

// rbNode is a node of a Ranking's B+tree. A leaf holds n entries, in order,
// in ord[:n] and item[:n], and links to the next leaf. An inner node has n
// children: kids[i] holds the entries from its bound (ord[i],
// item[i].Key) up to, not including, the bound of kids[i+1]. An inner
// node's bound 0 is not used to route (its parent's bound for it is), but
// is kept equal to it where that is free to do.
type rbNode[K cmp.Ordered] struct {
	n    int
	ord  [rbMax]rankOrd
	item [rbMax]Ranked[K] // a leaf's entries; an inner node's bound keys (Score unused)
	kids []*rbNode[K]     // nil in a leaf; rbMax long in an inner node
	next *rbNode[K]       // a leaf's successor in order
}

func (x *rbNode[K]) leaf() bool { return x.kids == nil }

// newInner returns an inner node without children.
func newInner[K cmp.Ordered]() *rbNode[K] {
	return &rbNode[K]{kids: make([]*rbNode[K], rbMax)}
}

// rankKey maps a score to an integer that sorts best first: descending
// score as cmp.Compare orders scores, so NaN last and -0 equal to +0.
func rankKey(s float64) uint64 {
	if s != s {
		return math.MaxUint64 // NaN; no other score maps here (see below)
	}
	if s == 0 {
		s = 0 // -0 ties with +0
	}
	b := math.Float64bits(s)
	if b>>63 != 0 {
		b = ^b // negative: a larger magnitude sorts lower
	} else {
		b |= 1 << 63
	}
	// b ascends with s and is not 0 (which would be a NaN's bits
	// inverted), so ^b descends with s and is not MaxUint64.
	return ^b
}

// keyPrefix returns the first 8 bytes of s as a big-endian integer,
// zero-padded: keyPrefix(a) < keyPrefix(b) implies a < b, and equal
// prefixes decide nothing.
func keyPrefix(s string) uint64 {
	var p uint64
	if len(s) >= 8 {
		_ = s[7]
		return uint64(s[0])<<56 | uint64(s[1])<<48 | uint64(s[2])<<40 | uint64(s[3])<<32 |
			uint64(s[4])<<24 | uint64(s[5])<<16 | uint64(s[6])<<8 | uint64(s[7])
	}
	for i := range 8 {
		p <<= 8
		if i < len(s) {
			p |= uint64(s[i])
		}
	}
	return p
}

// ordOf returns the packed position of an entry.
func (r *Ranking[K]) ordOf(key K, score float64) rankOrd {
	o := rankOrd{rk: rankKey(score)}
	if r.strKey {
		s, _ := any(key).(string)
		o.pfx = keyPrefix(s)
	}
	return o
}

// compareAt compares entry (or bound) i of x with the position (o, key):
// negative if i sorts first.
func (x *rbNode[K]) compareAt(i int, o rankOrd, key K) int {
	xo := &x.ord[i]
	if xo.rk != o.rk {
		if xo.rk < o.rk {
			return -1
		}
		return 1
	}
	if xo.pfx != o.pfx {
		if xo.pfx < o.pfx {
			return -1
		}
		return 1
	}
	return cmp.Compare(x.item[i].Key, key)
}

// search returns the index of the first entry of leaf x not before (o,
// key), and whether that entry is at (o, key).
func (x *rbNode[K]) search(o rankOrd, key K) (int, bool) {
	lo, hi := 0, x.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x.compareAt(mid, o, key) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < x.n && x.compareAt(lo, o, key) == 0
}

// route returns the child of inner node x whose range holds (o, key): the
// last one whose bound is not after it (child 0 has none).
func (x *rbNode[K]) route(o rankOrd, key K) int {
	lo, hi := 1, x.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x.compareAt(mid, o, key) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo - 1
}

// insertAt puts an entry (or, in an inner node, a bound and its child) at
// index i of x, which has room.
func (x *rbNode[K]) insertAt(i int, o rankOrd, it Ranked[K], kid *rbNode[K]) {
	copy(x.ord[i+1:x.n+1], x.ord[i:x.n])
	copy(x.item[i+1:x.n+1], x.item[i:x.n])
	x.ord[i], x.item[i] = o, it
	if kid != nil {
		copy(x.kids[i+1:x.n+1], x.kids[i:x.n])
		x.kids[i] = kid
	}
	x.n++
}

// removeAt takes entry (or bound and child) i out of x.
func (x *rbNode[K]) removeAt(i int) {
	copy(x.ord[i:x.n-1], x.ord[i+1:x.n])
	copy(x.item[i:x.n-1], x.item[i+1:x.n])
	x.n--
	x.item[x.n] = Ranked[K]{} // let the key be collected
	if !x.leaf() {
		copy(x.kids[i:x.n], x.kids[i+1:x.n+1])
		x.kids[x.n] = nil
	}
}

// moveTail moves x's entries (or bounds and children) from index from on
// to the front of y, which has room.
func (x *rbNode[K]) moveTail(from int, y *rbNode[K]) {
	m := x.n - from
	copy(y.ord[m:y.n+m], y.ord[:y.n])
	copy(y.item[m:y.n+m], y.item[:y.n])
	copy(y.ord[:m], x.ord[from:x.n])
	copy(y.item[:m], x.item[from:x.n])
	clear(x.item[from:x.n])
	if !x.leaf() {
		copy(y.kids[m:y.n+m], y.kids[:y.n])
		copy(y.kids[:m], x.kids[from:x.n])
		clear(x.kids[from:x.n])
	}
	x.n, y.n = from, y.n+m
}

// moveHead appends y's first m entries (or bounds and children) to x,
// which has room, and closes the gap in y.
func (x *rbNode[K]) moveHead(y *rbNode[K], m int) {
	copy(x.ord[x.n:x.n+m], y.ord[:m])
	copy(x.item[x.n:x.n+m], y.item[:m])
	copy(y.ord[:y.n-m], y.ord[m:y.n])
	copy(y.item[:y.n-m], y.item[m:y.n])
	clear(y.item[y.n-m : y.n])
	if !x.leaf() {
		copy(x.kids[x.n:x.n+m], y.kids[:m])
		copy(y.kids[:y.n-m], y.kids[m:y.n])
		clear(y.kids[y.n-m : y.n])
	}
	x.n, y.n = x.n+m, y.n-m
}

// insert adds an entry, which must not be in the tree.
func (r *Ranking[K]) insert(e Ranked[K]) {
	o := r.ordOf(e.Key, e.Score)
	if right := r.ins(r.root, o, e); right != nil {
		root := newInner[K]()
		root.insertAt(0, r.root.ord[0], Ranked[K]{Key: r.root.item[0].Key}, r.root)
		root.insertAt(1, right.ord[0], Ranked[K]{Key: right.item[0].Key}, right)
		r.root = root
	}
}

// ins adds the entry e, at position o, below x. If x was full it splits
// in two: ins returns the new right half, whose bound is its ord[0] and
// item[0].Key, for the caller to link after x.
func (r *Ranking[K]) ins(x *rbNode[K], o rankOrd, e Ranked[K]) *rbNode[K] {
	var (
		i   int
		kid *rbNode[K]
	)
	if x.leaf() {
		i, _ = x.search(o, e.Key)
	} else {
		k := x.route(o, e.Key)
		if kid = r.ins(x.kids[k], o, e); kid == nil {
			return nil
		}
		// The child split: add its new right half after it.
		i, o, e = k+1, kid.ord[0], Ranked[K]{Key: kid.item[0].Key}
	}
	if x.n < rbMax {
		x.insertAt(i, o, e, kid)
		return nil
	}
	y := &rbNode[K]{}
	if !x.leaf() {
		y.kids = make([]*rbNode[K], rbMax)
	} else {
		y.next, x.next = x.next, y
	}
	h := rbMax / 2
	x.moveTail(h, y)
	if i <= h {
		x.insertAt(i, o, e, kid)
	} else {
		y.insertAt(i-h, o, e, kid)
	}
	return y
}

// delete takes the entry at (o, key) out of the tree, if it is there.
func (r *Ranking[K]) delete(o rankOrd, key K) {
	r.del(r.root, o, key)
	if !r.root.leaf() && r.root.n == 1 {
		r.root = r.root.kids[0] // the root shrinks to its only child
	}
}

// del takes the entry at (o, key) out of the subtree x, reporting whether
// it was there. x may be left with fewer than rbMin entries: its parent
// refills it.
func (r *Ranking[K]) del(x *rbNode[K], o rankOrd, key K) bool {
	if x.leaf() {
		i, found := x.search(o, key)
		if found {
			x.removeAt(i)
		}
		return found
	}
	k := x.route(o, key)
	if !r.del(x.kids[k], o, key) {
		return false
	}
	if x.kids[k].n < rbMin {
		x.refill(k)
	}
	return true
}

// refill brings child k of inner node x (which has at least two) back to
// at least rbMin entries: it merges the child with a sibling when both fit
// in half a node, and otherwise shares their entries evenly.
func (x *rbNode[K]) refill(k int) {
	j := max(k-1, 0) // merge or share children j and j+1
	l, rt := x.kids[j], x.kids[j+1]
	if !l.leaf() {
		// The parent's bound for rt becomes rt's bound 0, so that rt's
		// bounds follow l's as the bounds of the children they route to.
		rt.ord[0], rt.item[0].Key = x.ord[j+1], x.item[j+1].Key
	}
	total := l.n + rt.n
	if total <= rbMax/2 {
		l.moveHead(rt, rt.n)
		if l.leaf() {
			l.next = rt.next
		}
		x.removeAt(j + 1)
		return
	}
	if h := total / 2; l.n < h {
		l.moveHead(rt, h-l.n)
	} else {
		l.moveTail(h, rt)
	}
	x.ord[j+1], x.item[j+1].Key = rt.ord[0], rt.item[0].Key
}

// first returns the leftmost leaf.
func (r *Ranking[K]) first() *rbNode[K] {
	x := r.root
	for !x.leaf() {
		x = x.kids[0]
	}
	return x
}

// appendBest appends the best n entries (fewer if there are fewer) to
// dst, walking the leaves. r.mu must be held.
func (r *Ranking[K]) appendBest(n int, dst []Ranked[K]) []Ranked[K] {
	for x := r.first(); x != nil && n > 0; x = x.next {
		m := min(n, x.n)
		dst = append(dst, x.item[:m]...)
		n -= m
	}
	return dst
}

// NewRanking returns an empty Ranking.
func NewRanking[K cmp.Ordered]() *Ranking[K] {
	r := new(Ranking[K])
	_, r.strKey = any(*new(K)).(string)
	r.root = new(rbNode[K])
	r.scores.init()
	empty := []Ranked[K]{}
	r.top.Store(&empty)
	return r
}

// compareRanked orders entries best first: descending score, then
// ascending key.
func compareRanked[K cmp.Ordered](a, b Ranked[K]) int {
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	return cmp.Compare(a.Key, b.Key)
}

// inTop reports whether entry e sorts within the published snapshot's
// range, so that adding or removing it changes the snapshot.
func (r *Ranking[K]) inTop(e Ranked[K]) bool {
	s := *r.top.Load()
	return len(s) < RankingTopCache || compareRanked(e, s[len(s)-1]) <= 0
}

// publish rebuilds the snapshot of the best entries from the tree.
func (r *Ranking[K]) publish() {
	s := r.appendBest(RankingTopCache, make([]Ranked[K], 0, min(int(r.n.Load()), RankingTopCache)))
	r.top.Store(&s)
}

// Set gives key the score, inserting it or moving it. The move is
// published atomically: no reader sees the key twice or not at all.
func (r *Ranking[K]) Set(key K, score float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.setLocked(key, score) {
		r.publish()
	}
}

// setLocked gives key the score, with r.mu held, and reports whether the
// published snapshot must be rebuilt (the caller does it).
func (r *Ranking[K]) setLocked(key K, score float64) (touched bool) {
	c := r.scoreOf(key)
	e := Ranked[K]{key, score}
	touched = r.inTop(e)
	if c != nil {
		old := math.Float64frombits(atomic.LoadUint64(c))
		if sameScore(old, score) {
			return false
		}
		touched = touched || r.inTop(Ranked[K]{key, old})
		r.delete(r.ordOf(key, old), key)
		r.insert(e)
		atomic.StoreUint64(c, math.Float64bits(score))
		return touched
	}
	r.insert(e)
	r.n.Add(1)
	r.scores.store(key, rankScore{math.Float64bits(score)})
	return touched
}

// SetMany gives each entry's key its score, as calling Set for each entry
// in order would (a key listed twice gets its last score), and publishes
// the snapshot of the best entries once: Top shows all of the changes or
// none. Into an empty Ranking it loads the entries in O(m log m), building
// the tree bottom-up instead of searching for each one (filling a rebuilt
// view's ranking). Otherwise it moves each entry as Set does, under one
// lock (a projection's batch).
func (r *Ranking[K]) SetMany(entries []Ranked[K]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(entries) == 0 {
		return
	}
	if r.n.Load() != 0 {
		touched := false
		for _, e := range entries {
			touched = r.setLocked(e.Key, e.Score) || touched
		}
		if touched {
			r.publish()
		}
		return
	}
	// The last entry of each key wins: walking the entries backwards, the
	// key index takes a key the first time it is seen. Then one sort by
	// the packed position, which compares integers (and whole keys only
	// when their first 8 bytes and scores tie), puts them in order.
	ents := make([]rankEntry[K], 0, len(entries))
	r.scores.reserve(len(entries))
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if r.scores.storeNew(e.Key, rankScore{math.Float64bits(e.Score)}) {
			ents = append(ents, rankEntry[K]{r.ordOf(e.Key, e.Score), e})
		}
	}
	slices.SortFunc(ents, func(a, b rankEntry[K]) int {
		if c := cmp.Compare(a.o.rk, b.o.rk); c != 0 {
			return c
		}
		if c := cmp.Compare(a.o.pfx, b.o.pfx); c != 0 {
			return c
		}
		return cmp.Compare(a.e.Key, b.e.Key)
	})
	r.root = r.build(ents)
	r.n.Store(int64(len(ents)))
	r.publish()
}

// rankEntry is an entry with its packed position, for a bulk load.
type rankEntry[K cmp.Ordered] struct {
	o rankOrd
	e Ranked[K]
}

// build returns the root of a tree holding entries, which are in order
// and hold each key once: leaves, then each level of inner nodes, packed
// evenly to about rbFill each.
func (r *Ranking[K]) build(entries []rankEntry[K]) *rbNode[K] {
	leaves := make([]*rbNode[K], (len(entries)+rbFill-1)/rbFill)
	at := 0
	for i := range leaves {
		x := new(rbNode[K])
		x.n = (len(entries) - at) / (len(leaves) - i)
		for j := range x.n {
			e := &entries[at+j]
			x.ord[j], x.item[j] = e.o, e.e
		}
		at += x.n
		if i > 0 {
			leaves[i-1].next = x
		}
		leaves[i] = x
	}
	nodes := leaves
	for len(nodes) > 1 {
		up := make([]*rbNode[K], (len(nodes)+rbFill-1)/rbFill)
		at := 0
		for i := range up {
			x := newInner[K]()
			n := (len(nodes) - at) / (len(up) - i)
			for _, kid := range nodes[at : at+n] {
				x.insertAt(x.n, kid.ord[0], Ranked[K]{Key: kid.item[0].Key}, kid)
			}
			at += n
			up[i] = x
		}
		nodes = up
	}
	return nodes[0]
}

// sameScore reports whether a and b are the same float64, bit for bit
// apart from NaN payloads, so that Set(k, 0) after Set(k, -0) is not
// skipped and Score returns what was set last.
func sameScore(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (math.IsNaN(a) && math.IsNaN(b))
}

// Remove deletes key from the ranking, if present.
func (r *Ranking[K]) Remove(key K) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.scoreOf(key)
	if c == nil {
		return
	}
	old := math.Float64frombits(atomic.LoadUint64(c))
	touched := r.inTop(Ranked[K]{key, old})
	r.delete(r.ordOf(key, old), key)
	r.n.Add(-1)
	if touched {
		r.publish()
	}
	r.scores.remove(key)
}

// Score returns key's score and whether key is ranked. It costs a [Map]
// lookup and does not allocate.
func (r *Ranking[K]) Score(key K) (float64, bool) {
	if c := r.scoreOf(key); c != nil {
		return math.Float64frombits(atomic.LoadUint64(c)), true
	}
	return 0, false
}

// Len returns the number of ranked keys.
func (r *Ranking[K]) Len() int { return int(r.n.Load()) }

// Top appends the best n entries (fewer if the ranking is shorter) to dst,
// best first, and returns the extended slice. For n up to RankingTopCache
// it copies from the published snapshot: O(k), no lock, and no allocation
// when dst has room; reuse a buffer, as in r.Top(10, buf[:0]).
func (r *Ranking[K]) Top(n int, dst []Ranked[K]) []Ranked[K] {
	if n <= 0 {
		return dst
	}
	if n <= RankingTopCache {
		s := *r.top.Load()
		return append(dst, s[:min(n, len(s))]...)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.appendBest(n, dst)
}

// All returns an iterator over a snapshot of the ranking, best first,
// taken when iteration starts (under the writer's lock, which is released
// before the first yield).
func (r *Ranking[K]) All() iter.Seq[Ranked[K]] {
	return func(yield func(Ranked[K]) bool) {
		for _, e := range r.Top(int(r.n.Load())+1, nil) {
			if !yield(e) {
				return
			}
		}
	}
}

// Clear removes every entry.
func (r *Ranking[K]) Clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.root = new(rbNode[K])
	r.n.Store(0)
	empty := []Ranked[K]{}
	r.top.Store(&empty)
	r.scores.Clear()
}
