package readmodel

import (
	"cmp"
	"iter"
	"math"
)

// Ranked is one entry of a [Ranking].
type Ranked[K cmp.Ordered] struct {
	Key   K       // the ranked key, such as a product ID
	Score float64 // higher ranks first
}

// Ranking is an ordered index from keys to scores, for views such as "top
// rated" or "best sellers": highest score first, ties broken by ascending
// key. Reading the best k entries costs O(log n + k), not a sort of every
// key per query.
//
// Reads (Top, All, Len, Score) take no lock and never wait for a writer.
// Top, All and Len each work on an immutable snapshot of the whole
// ranking, so a result is always sorted, never holds a key twice, and
// shows every entry either before or after a concurrent Set, never in
// between. Score reads a separate key index that is updated just after
// the ordering, so a Score racing with a Set of the same key may return
// the previous score for an instant. Set, Remove and Clear are serialised
// by a mutex and cost O(log n) time plus the allocation of the copied
// tree paths.
//
// Scores are ordered by [cmp.Compare]: NaN ranks below every other score,
// and -0 ties with +0.
//
// A Ranking must be created with [NewRanking] and must not be copied after
// first use.
type Ranking[K cmp.Ordered] struct {
	t      cowTree[Ranked[K]] // ordered by score, then key
	scores Map[K, float64]    // key -> current score; written only under t.mu
}

// NewRanking returns an empty Ranking.
func NewRanking[K cmp.Ordered]() *Ranking[K] {
	r := new(Ranking[K])
	r.t.ord.cmp = compareRanked[K]
	r.scores.init()
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

// Set gives key the score, inserting it or moving it. The move is
// published atomically: no reader sees the key twice or not at all.
func (r *Ranking[K]) Set(key K, score float64) {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	old, ok := r.scores.Load(key)
	if ok && sameScore(old, score) {
		return
	}
	root := r.t.root.Load()
	if ok {
		root, _ = r.t.ord.remove(root, Ranked[K]{key, old})
	}
	root, _ = r.t.ord.insert(root, Ranked[K]{key, score})
	r.t.root.Store(root)
	r.scores.store(key, score)
}

// sameScore reports whether a and b are the same float64, bit for bit
// apart from NaN payloads, so that Set(k, 0) after Set(k, -0) is not
// skipped and Score returns what was set last.
func sameScore(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (math.IsNaN(a) && math.IsNaN(b))
}

// Remove deletes key from the ranking, if present.
func (r *Ranking[K]) Remove(key K) {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	old, ok := r.scores.Load(key)
	if !ok {
		return
	}
	root, _ := r.t.ord.remove(r.t.root.Load(), Ranked[K]{key, old})
	r.t.root.Store(root)
	r.scores.remove(key)
}

// Score returns key's score and whether key is ranked. It costs a [Map]
// lookup and does not allocate.
func (r *Ranking[K]) Score(key K) (float64, bool) { return r.scores.Load(key) }

// Len returns the number of ranked keys.
func (r *Ranking[K]) Len() int { return size(r.t.root.Load()) }

// Top appends the best n entries (fewer if the ranking is shorter) to dst,
// best first, and returns the extended slice. It costs O(log n + k) and
// allocates nothing when dst has room; reuse a buffer, as in
// r.Top(10, buf[:0]).
func (r *Ranking[K]) Top(n int, dst []Ranked[K]) []Ranked[K] {
	var none Ranked[K]
	return pageOf(r.t.ord, r.t.root.Load(), none, true, n, dst)
}

// All returns an iterator over a snapshot of the ranking, best first,
// taken when iteration starts.
func (r *Ranking[K]) All() iter.Seq[Ranked[K]] {
	return func(yield func(Ranked[K]) bool) { all(r.t.root.Load(), yield) }
}

// Clear removes every entry.
func (r *Ranking[K]) Clear() {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	r.t.root.Store(nil)
	r.scores.Clear()
}
