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
// The full order lives in a skiplist that only writers touch, so a Set
// moves an entry in place in O(log n) time without allocating. Whenever a
// write changes the best RankingTopCache entries, the writer publishes a
// new immutable snapshot of them with one atomic store. Top(n) for n up to
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
	mu    sync.Mutex                  // serialises writers and full-order reads
	head  rnode[K]                    // sentinel; head.next has rankMaxLevel entries
	level int                         // levels in use
	rnd   uint64                      // xorshift state for node levels
	nodes Map[K, *rnode[K]]           // key index for Set, Remove and Score
	top   atomic.Pointer[[]Ranked[K]] // the best RankingTopCache entries
	n     atomic.Int64
}

const rankMaxLevel = 24 // 4^24 keys before levels saturate: plenty

type rnode[K cmp.Ordered] struct {
	item Ranked[K] // written and read by writers only, under mu
	// score is item.Score for lock-free readers (Score): a move rewrites
	// it in place, so that it costs no allocation.
	score atomic.Uint64
	next  []*rnode[K]
}

// rnode1 to rnode4 are nodes of levels 1 to 4 (more than 99% of them)
// allocated with their next pointers: one allocation instead of two, and a
// search reads a node's item and its next pointers from the same or the
// adjacent cache line instead of following a second pointer. A search
// through a large ranking is bound by those cache misses.
type (
	rnode1[K cmp.Ordered] struct {
		rnode[K]
		arr [1]*rnode[K]
	}
	rnode2[K cmp.Ordered] struct {
		rnode[K]
		arr [2]*rnode[K]
	}
	rnode3[K cmp.Ordered] struct {
		rnode[K]
		arr [3]*rnode[K]
	}
	rnode4[K cmp.Ordered] struct {
		rnode[K]
		arr [4]*rnode[K]
	}
)

// newRNode returns a node for item with level next pointers.
func newRNode[K cmp.Ordered](item Ranked[K], level int) *rnode[K] {
	var x *rnode[K]
	switch level {
	case 1:
		n := new(rnode1[K])
		n.next = n.arr[:]
		x = &n.rnode
	case 2:
		n := new(rnode2[K])
		n.next = n.arr[:]
		x = &n.rnode
	case 3:
		n := new(rnode3[K])
		n.next = n.arr[:]
		x = &n.rnode
	case 4:
		n := new(rnode4[K])
		n.next = n.arr[:]
		x = &n.rnode
	default:
		x = &rnode[K]{next: make([]*rnode[K], level)}
	}
	x.item = item
	return x
}

// NewRanking returns an empty Ranking.
func NewRanking[K cmp.Ordered]() *Ranking[K] {
	r := new(Ranking[K])
	r.head.next = make([]*rnode[K], rankMaxLevel)
	r.level = 1
	r.rnd = 0x9e3779b97f4a7c15
	r.nodes.init()
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

// randomLevel draws a node level with P(level > k) = 4^-k.
func (r *Ranking[K]) randomLevel() int {
	r.rnd ^= r.rnd << 13
	r.rnd ^= r.rnd >> 7
	r.rnd ^= r.rnd << 17
	lvl, x := 1, r.rnd
	for lvl < rankMaxLevel && x&3 == 0 {
		lvl++
		x >>= 2
	}
	return lvl
}

// find fills prev with, per level, the last node ordered before x, and
// returns the level-0 successor (x itself when present).
func (r *Ranking[K]) find(x Ranked[K], prev *[rankMaxLevel]*rnode[K]) *rnode[K] {
	n := &r.head
	for l := r.level - 1; l >= 0; l-- {
		for nx := n.next[l]; nx != nil && compareRanked(nx.item, x) < 0; nx = n.next[l] {
			n = nx
		}
		prev[l] = n
	}
	return n.next[0]
}

func (r *Ranking[K]) unlink(x *rnode[K], prev *[rankMaxLevel]*rnode[K]) {
	for l := range x.next {
		if prev[l].next[l] == x {
			prev[l].next[l] = x.next[l]
		}
	}
	for r.level > 1 && r.head.next[r.level-1] == nil {
		r.level--
	}
}

func (r *Ranking[K]) link(x *rnode[K], prev *[rankMaxLevel]*rnode[K]) {
	if lv := len(x.next); lv > r.level {
		for l := r.level; l < lv; l++ {
			prev[l] = &r.head
		}
		r.level = lv
	}
	for l := range x.next {
		x.next[l] = prev[l].next[l]
		prev[l].next[l] = x
	}
}

// inTop reports whether entry e sorts within the published snapshot's
// range, so that adding or removing it changes the snapshot.
func (r *Ranking[K]) inTop(e Ranked[K]) bool {
	s := *r.top.Load()
	return len(s) < RankingTopCache || compareRanked(e, s[len(s)-1]) <= 0
}

// publish rebuilds the snapshot of the best entries from the skiplist.
func (r *Ranking[K]) publish() {
	n := min(int(r.n.Load()), RankingTopCache)
	s := make([]Ranked[K], 0, n)
	for x := r.head.next[0]; x != nil && len(s) < n; x = x.next[0] {
		s = append(s, x.item)
	}
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
	x, ok := r.nodes.Load(key)
	if ok && sameScore(x.item.Score, score) {
		return false
	}
	var prev [rankMaxLevel]*rnode[K]
	e := Ranked[K]{key, score}
	touched = r.inTop(e)
	if ok {
		touched = touched || r.inTop(x.item)
		r.find(x.item, &prev)
		r.unlink(x, &prev)
		x.item = e // reuse the node: a move allocates nothing
	} else {
		x = newRNode(e, r.randomLevel())
		r.n.Add(1)
	}
	r.find(e, &prev)
	r.link(x, &prev)
	x.score.Store(math.Float64bits(score))
	if !ok {
		r.nodes.store(key, x)
	}
	return touched
}

// SetMany gives each entry's key its score, as calling Set for each entry
// in order would (a key listed twice gets its last score), and publishes
// the snapshot of the best entries once: Top shows all of the changes or
// none. Into an empty Ranking it loads the entries in O(m log m), linking
// them in order instead of searching for each one (filling a rebuilt
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
	// The last entry of each key wins: a stable sort by key keeps a key's
	// entries in their given order.
	es := slices.Clone(entries)
	slices.SortStableFunc(es, func(a, b Ranked[K]) int { return cmp.Compare(a.Key, b.Key) })
	last := es[:0]
	for i, e := range es {
		if i+1 < len(es) && es[i+1].Key == e.Key {
			continue
		}
		last = append(last, e)
	}
	slices.SortFunc(last, compareRanked[K])
	var tails [rankMaxLevel]*rnode[K]
	for l := range tails {
		tails[l] = &r.head
	}
	for _, e := range last {
		x := newRNode(e, r.randomLevel())
		x.score.Store(math.Float64bits(e.Score))
		for l := range x.next {
			tails[l].next[l] = x
			tails[l] = x
		}
		r.level = max(r.level, len(x.next))
		r.nodes.store(e.Key, x)
	}
	r.n.Store(int64(len(last)))
	r.publish()
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
	x, ok := r.nodes.Load(key)
	if !ok {
		return
	}
	var prev [rankMaxLevel]*rnode[K]
	touched := r.inTop(x.item)
	r.find(x.item, &prev)
	r.unlink(x, &prev)
	r.n.Add(-1)
	if touched {
		r.publish()
	}
	r.nodes.remove(key)
}

// Score returns key's score and whether key is ranked. It costs a [Map]
// lookup and does not allocate.
func (r *Ranking[K]) Score(key K) (float64, bool) {
	if x, ok := r.nodes.Load(key); ok {
		return math.Float64frombits(x.score.Load()), true
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
	for x := r.head.next[0]; x != nil && n > 0; x = x.next[0] {
		dst = append(dst, x.item)
		n--
	}
	return dst
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
	clear(r.head.next)
	r.level = 1
	r.n.Store(0)
	empty := []Ranked[K]{}
	r.top.Store(&empty)
	r.nodes.Clear()
}
