package readmodel

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkRankTree verifies the B+tree behind r against want, the entries it must
// hold in order: every leaf at the same depth; node sizes within bounds
// (the root excepted); every entry within its parents' bounds; the leaf
// chain in order; the packed positions matching the entries; nothing left
// in the slots past a node's end; and the key index, Len and the top
// snapshot agreeing.
func checkRankTree[K cmp.Ordered](t *testing.T, r *Ranking[K], want []Ranked[K]) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var leaves []*rbNode[K]
	depth := -1
	var walk func(x *rbNode[K], d int)
	walk = func(x *rbNode[K], d int) {
		if x != r.root && (x.n < rbMin || x.n > rbMax) {
			t.Fatalf("node at depth %d holds %d", d, x.n)
		}
		for i := x.n; i < rbMax; i++ {
			if x.item[i] != (Ranked[K]{}) || (!x.leaf() && x.kids[i] != nil) {
				t.Fatalf("slot %d past the end of a node (depth %d) is set", i, d)
			}
		}
		if x.leaf() {
			if depth == -1 {
				depth = d
			} else if depth != d {
				t.Fatalf("leaves at depths %d and %d", depth, d)
			}
			for i := range x.n {
				if x.ord[i] != r.ordOf(x.item[i].Key, x.item[i].Score) {
					t.Fatalf("entry %v packed as %v", x.item[i], x.ord[i])
				}
			}
			leaves = append(leaves, x)
			return
		}
		if x == r.root && x.n < 2 {
			t.Fatalf("inner root with %d children", x.n)
		}
		for i := range x.n {
			kid := x.kids[i]
			if i > 0 && !kid.leaf() && (kid.ord[0] != x.ord[i] || kid.item[0].Key != x.item[i].Key) {
				t.Fatalf("inner node's bound 0 differs from its parent's bound for it")
			}
			checkBounds(t, r, x, i)
			walk(kid, d+1)
		}
	}
	walk(r.root, 0)
	maxLevels = max(maxLevels, depth+1)
	var got []Ranked[K]
	for i, x := range leaves {
		got = append(got, x.item[:x.n]...)
		var next *rbNode[K]
		if i+1 < len(leaves) {
			next = leaves[i+1]
		}
		if x.next != next {
			t.Fatalf("leaf %d of %d links to the wrong successor", i, len(leaves))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("tree holds %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Key != want[i].Key || !sameScore(got[i].Score, want[i].Score) {
			t.Fatalf("entry %d = %v, want %v", i, got[i], want[i])
		}
	}
	if int(r.n.Load()) != len(want) || r.scores.Len() != len(want) {
		t.Fatalf("Len %d, key index %d, want %d", r.n.Load(), r.scores.Len(), len(want))
	}
	top := *r.top.Load()
	if len(top) != min(len(want), RankingTopCache) {
		t.Fatalf("snapshot of %d, want %d", len(top), min(len(want), RankingTopCache))
	}
	for i := range top {
		if top[i].Key != want[i].Key || !sameScore(top[i].Score, want[i].Score) {
			t.Fatalf("snapshot entry %d = %v, want %v", i, top[i], want[i])
		}
	}
}

// maxLevels is the most levels checkRankTree saw in a tree.
var maxLevels int

// checkBounds checks that every entry below child i of inner node x lies
// from x's bound i (for i > 0) up to, not including, bound i+1.
func checkBounds[K cmp.Ordered](t *testing.T, r *Ranking[K], x *rbNode[K], i int) {
	t.Helper()
	var check func(y *rbNode[K])
	check = func(y *rbNode[K]) {
		if !y.leaf() {
			for k := range y.n {
				check(y.kids[k])
			}
			return
		}
		for k := range y.n {
			e := y.item[k]
			o := r.ordOf(e.Key, e.Score)
			if i > 0 && x.compareAt(i, o, e.Key) > 0 {
				t.Fatalf("entry %v sorts before its bound %v %v", e, x.ord[i], x.item[i].Key)
			}
			if i+1 < x.n && x.compareAt(i+1, o, e.Key) <= 0 {
				t.Fatalf("entry %v sorts at or after the next bound %v %v", e, x.ord[i+1], x.item[i+1].Key)
			}
		}
	}
	check(x.kids[i])
}

// sortedRef is the reference order: a full sort of the map.
func sortedRef[K cmp.Ordered](ref map[K]float64) []Ranked[K] {
	out := make([]Ranked[K], 0, len(ref))
	for k, s := range ref {
		out = append(out, Ranked[K]{k, s})
	}
	slices.SortFunc(out, compareRanked[K])
	return out
}

// TestRankingTreeAgainstReference drives rankings big enough for trees
// of three levels through phases of growth and shrinkage (so
// that nodes split, share, merge and the root grows and collapses), with
// Set, SetMany, Remove and Clear on keys whose scores tie often, including
// NaN, infinities and both zeros, and checks the tree's invariants and its
// order against a map sorted in full.
func TestRankingTreeAgainstReference(t *testing.T) {
	scores := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), -1.5, 5e-324, math.MaxFloat64}
	score := func(rng *rand.Rand) float64 {
		if rng.IntN(20) == 0 {
			return scores[rng.IntN(len(scores))]
		}
		return float64(rng.IntN(21)) / 5 // ratings: 21 values, many ties
	}
	t.Run("int", func(t *testing.T) {
		testRankingTree(t, func(rng *rand.Rand, space int) int { return rng.IntN(space) }, score)
	})
	t.Run("string", func(t *testing.T) {
		// Keys that share their first 8 bytes or differ only past them, of
		// every length around 8, and with zero bytes.
		pre := []string{"", "p-", "product-", "\x00", "abcdefgh", "abcdefg"}
		testRankingTree(t, func(rng *rand.Rand, space int) string {
			i := rng.IntN(space)
			return pre[i%len(pre)] + fmt.Sprint(i/len(pre)) + []string{"", "\x00", "x"}[i%3]
		}, score)
	})
}

func testRankingTree[K cmp.Ordered](t *testing.T, key func(*rand.Rand, int) K, score func(*rand.Rand) float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := NewRanking[K]()
	ref := map[K]float64{}
	maxLevels = 0
	check := func(phase string) {
		t.Helper()
		want := sortedRef(ref)
		checkRankTree(t, r, want)
		for k, s := range ref {
			if got, ok := r.Score(k); !ok || !sameScore(got, s) {
				t.Fatalf("%s: Score(%v) = %v, %v; want %v", phase, k, got, ok, s)
			}
		}
		if got := slices.Collect(r.All()); len(got) != len(want) {
			t.Fatalf("%s: All has %d entries, want %d", phase, len(got), len(want))
		}
	}
	set := func(k K, s float64) {
		r.Set(k, s)
		ref[k] = s
	}
	const space = 16_000
	// Grow by single Sets to about 8K keys (three levels: some 200
	// leaves), checking as the tree deepens.
	for i := range 12_000 {
		set(key(rng, space), score(rng))
		if i%3000 == 0 {
			check(fmt.Sprint("grow ", i))
		}
	}
	check("grown")
	// Churn: moves, removals and batches, the size holding steady.
	for i := range 20_000 {
		k := key(rng, space)
		switch op := rng.IntN(50); {
		case op < 30:
			set(k, score(rng))
		case op < 49:
			r.Remove(k)
			delete(ref, k)
		default:
			batch := make([]Ranked[K], rng.IntN(300))
			for j := range batch {
				batch[j] = Ranked[K]{key(rng, space), score(rng)}
				if j > 0 && rng.IntN(10) == 0 {
					batch[j].Key = batch[j-1].Key // a key twice: the last wins
				}
			}
			r.SetMany(batch)
			for _, e := range batch {
				ref[e.Key] = e.Score
			}
		}
		if i%5000 == 0 {
			check(fmt.Sprint("churn ", i))
		}
	}
	check("churned")
	// Shrink to nothing in random order: nodes merge, the root collapses.
	keys := make([]K, 0, len(ref))
	for k := range ref {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for i, k := range keys {
		r.Remove(k)
		delete(ref, k)
		if i%3000 == 0 || len(ref) < 300 && i%29 == 0 {
			check(fmt.Sprint("shrink ", i))
		}
	}
	check("empty")
	// A bulk load into the empty ranking, then single changes on top,
	// removing from the best end (the leftmost leaves and their parents).
	batch := make([]Ranked[K], 20_000)
	for j := range batch {
		batch[j] = Ranked[K]{key(rng, space*2), score(rng)}
	}
	r.SetMany(batch)
	for _, e := range batch {
		ref[e.Key] = e.Score
	}
	check("loaded")
	for i := range 10_000 {
		if i%2 == 0 {
			best := r.Top(1, nil)[0]
			r.Remove(best.Key)
			delete(ref, best.Key)
		} else {
			set(key(rng, space*2), score(rng))
		}
		if i%2500 == 0 {
			check(fmt.Sprint("after load ", i))
		}
	}
	check("final")
	r.Clear()
	clear(ref)
	check("cleared")
	set(key(rng, space), 1)
	check("after Clear")
	if maxLevels < 3 {
		t.Fatalf("the tree never grew past %d levels", maxLevels)
	}
}

// TestRankKeyOrder checks that rankKey orders scores as the ranking must:
// descending by cmp.Compare, -0 tied with +0, NaN (any payload) last.
func TestRankKeyOrder(t *testing.T) {
	vals := []float64{math.Inf(1), math.MaxFloat64, 1e300, 4.5, 1, 5e-324, 0, math.Copysign(0, -1),
		-5e-324, -1, -4.5, -math.MaxFloat64, math.Inf(-1), math.NaN(), math.Float64frombits(0xfff8000000000001)}
	rng := rand.New(rand.NewPCG(3, 3))
	for range 10_000 {
		vals = append(vals, math.Float64frombits(rng.Uint64()))
	}
	for _, a := range vals {
		for _, b := range vals[:40] {
			want := cmp.Compare(b, a) // best first: descending
			got := cmp.Compare(rankKey(a), rankKey(b))
			if got != want {
				t.Fatalf("rankKey orders %v, %v as %d, want %d", a, b, got, want)
			}
		}
	}
}

// TestKeyPrefixOrder checks that keyPrefix never contradicts string order.
func TestKeyPrefixOrder(t *testing.T) {
	parts := []string{"", "\x00", "\xff", "a", "ab", "abcdefg", "abcdefgh", "abcdefghi", "p-1", "p-10"}
	var keys []string
	for _, a := range parts {
		for _, b := range parts {
			keys = append(keys, a+b)
		}
	}
	for _, a := range keys {
		for _, b := range keys {
			if pa, pb := keyPrefix(a), keyPrefix(b); pa != pb && cmp.Compare(pa, pb) != cmp.Compare(a, b) {
				t.Fatalf("keyPrefix orders %q, %q against the strings", a, b)
			}
		}
	}
}

// TestRankingMoveDoesNotAllocate: a move of a ranked key, out of and back
// into the top snapshot's range excepted, allocates nothing (no node
// splits when the size is steady).
func TestRankingMoveDoesNotAllocate(t *testing.T) {
	r := NewRanking[string]()
	for i := range 5000 {
		r.Set(fmt.Sprint("p-", i), float64(i%21)/5)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	keys := make([]string, 5000)
	for i := range keys {
		keys[i] = fmt.Sprint("p-", i)
	}
	allocs := testing.AllocsPerRun(2000, func() {
		r.Set(keys[rng.IntN(len(keys))], float64(rng.IntN(15))/5) // below the top
	})
	if allocs > 0.05 {
		t.Fatalf("%.3f allocations per move", allocs)
	}
}
