package readmodel_test

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/readmodel"
)

// sameSlice asserts that got holds the elements of want, in order; a nil
// and an empty slice are the same.
func sameSlice[T any](t *testing.T, want, got []T, msgAndArgs ...any) bool {
	t.Helper()
	if len(want) == 0 {
		return assert.Empty(t, got, msgAndArgs...)
	}
	return assert.Equal(t, want, got, msgAndArgs...)
}

// requireSameSlice is sameSlice that stops the test.
func requireSameSlice[T any](t *testing.T, want, got []T, msgAndArgs ...any) {
	t.Helper()
	if !sameSlice(t, want, got, msgAndArgs...) {
		t.FailNow()
	}
}

func TestRankingBasics(t *testing.T) {
	r := readmodel.NewRanking[string]()
	assert.Empty(t, r.Top(3, nil), "Top of an empty ranking")
	assert.Zero(t, r.Len(), "Len of an empty ranking")
	r.Set("b", 4.5)
	r.Set("a", 4.5) // ties with b: ascending key wins
	r.Set("c", 3)
	r.Set("d", 5)
	want := []readmodel.Ranked[string]{{"d", 5}, {"a", 4.5}, {"b", 4.5}, {"c", 3}}
	assert.Equal(t, want, r.Top(10, nil))
	assert.Equal(t, want[:2], r.Top(2, nil), "Top(2)")
	assert.Empty(t, r.Top(0, nil), "Top(0)")
	assert.Empty(t, r.Top(-1, nil), "Top(-1)")
	// Top appends to dst.
	prefix := []readmodel.Ranked[string]{{"x", 0}}
	assert.Equal(t, []readmodel.Ranked[string]{{"x", 0}, {"d", 5}}, r.Top(1, prefix), "Top with a prefix")

	r.Set("c", 6) // move up
	r.Set("d", 1) // move down
	want = []readmodel.Ranked[string]{{"c", 6}, {"a", 4.5}, {"b", 4.5}, {"d", 1}}
	assert.Equal(t, want, slices.Collect(r.All()), "after moves")
	s, ok := r.Score("c")
	assert.True(t, ok, "Score(c)")
	assert.Equal(t, 6.0, s, "Score(c)")
	_, ok = r.Score("zz")
	assert.False(t, ok, "Score of an unranked key")
	r.Set("c", 6) // no-op
	assert.Equal(t, 4, r.Len())

	r.Remove("a")
	r.Remove("never")
	assert.Equal(t, []readmodel.Ranked[string]{{"c", 6}, {"b", 4.5}, {"d", 1}}, r.Top(10, nil), "after Remove")
	r.Clear()
	assert.Zero(t, r.Len(), "after Clear")
	assert.Empty(t, r.Top(5, nil), "after Clear")
	_, ok = r.Score("c")
	assert.False(t, ok, "Score survived Clear")
	r.Set("e", 1)
	assert.Equal(t, 1, r.Len(), "usable after Clear")
}

func TestRankingSpecialScores(t *testing.T) {
	r := readmodel.NewRanking[string]()
	r.Set("nan", math.NaN())
	r.Set("inf", math.Inf(1))
	r.Set("neginf", math.Inf(-1))
	r.Set("zero", 0)
	r.Set("negzero", math.Copysign(0, -1)) // ties with zero
	var keys []string
	for e := range r.All() {
		keys = append(keys, e.Key)
	}
	assert.Equal(t, []string{"inf", "negzero", "zero", "neginf", "nan"}, keys, "order")
	// Moving between -0 and +0 updates the stored score.
	r.Set("negzero", 0)
	s, _ := r.Score("negzero")
	assert.False(t, math.Signbit(s), "Score kept -0")
	r.Set("nan", math.NaN()) // no-op, not a duplicate
	r.Remove("nan")
	assert.Equal(t, 4, r.Len(), "after removing NaN")
}

func TestRankingTopDoesNotAllocate(t *testing.T) {
	r := readmodel.NewRanking[string]()
	for i := range 1000 {
		r.Set(fmt.Sprint("p", i), float64(i%97))
	}
	buf := make([]readmodel.Ranked[string], 0, 10)
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = r.Top(10, buf[:0]) }), "allocations per Top")
	assert.Len(t, buf, 10)
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = r.Score("p500") }), "allocations per Score")
}

// TestRankingAgainstReference applies random operations to a Ranking and
// to a map, comparing Top with a full sort of the map.
func TestRankingAgainstReference(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			r := readmodel.NewRanking[int]()
			ref := map[int]float64{}
			for step := range 20000 {
				k := rng.IntN(1500)
				switch op := rng.IntN(10); {
				case op < 7:
					s := float64(rng.IntN(200)) / 4 // ties and moves
					r.Set(k, s)
					ref[k] = s
				case op < 9:
					r.Remove(k)
					delete(ref, k)
				default:
					if step%50 == 0 && rng.IntN(10) == 0 {
						r.Clear()
						clear(ref)
					}
				}
				want, wok := ref[k]
				if s, ok := r.Score(k); s != want || ok != wok { // hot loop: compare first, then fail
					require.Failf(t, "Score wrong", "step %d: Score(%d) = %v, %v; want %v, %v", step, k, s, ok, want, wok)
				}
				if step%20 == 0 { // the snapshot path: the best entries, lock-free
					want := sortedRanking(ref)
					for _, n := range []int{1, 10, readmodel.RankingTopCache} {
						requireSameSlice(t, want[:min(n, len(want))], r.Top(n, nil), "step %d: Top(%d)", step, n)
					}
				}
				if step%200 == 0 {
					want := sortedRanking(ref)
					n := rng.IntN(len(want) + 5)
					requireSameSlice(t, want[:min(n, len(want))], r.Top(n, nil), "step %d: Top(%d)", step, n)
					require.Equal(t, len(ref), r.Len(), "step %d: Len", step)
				}
			}
			sameSlice(t, sortedRanking(ref), slices.Collect(r.All()), "final order")
		})
	}
}

// sortedRanking is the reference: a full sort.
func sortedRanking(m map[int]float64) []readmodel.Ranked[int] {
	out := make([]readmodel.Ranked[int], 0, len(m))
	for k, s := range m {
		out = append(out, readmodel.Ranked[int]{Key: k, Score: s})
	}
	slices.SortFunc(out, func(a, b readmodel.Ranked[int]) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return out
}

func TestSortedSetBasics(t *testing.T) {
	s := readmodel.NewSortedSet[string]()
	for _, k := range []string{"m", "c", "x", "a", "q"} {
		assert.True(t, s.Add(k), "Add(%q) of a new key", k)
	}
	assert.False(t, s.Add("c"), "Add of a present key")
	assert.True(t, s.Contains("q"))
	assert.False(t, s.Contains("b"))
	assert.Equal(t, 5, s.Len())
	assert.Equal(t, []string{"a", "c"}, s.Page(2, nil), "first page")
	assert.Equal(t, []string{"m", "q"}, s.PageAfter("c", 2, nil), "page after c")
	assert.Equal(t, []string{"m", "q", "x"}, s.PageAfter("d", 10, nil), "page after an absent cursor")
	assert.Empty(t, s.PageAfter("x", 10, nil), "page after the last key")
	assert.Empty(t, s.Page(0, nil), "limit 0")
	assert.True(t, s.Remove("m"), "Remove of a present key")
	assert.False(t, s.Remove("m"), "Remove of an absent key")
	assert.Equal(t, []string{"a", "c", "q", "x"}, slices.Collect(s.All()))
	s.Clear()
	assert.Zero(t, s.Len(), "after Clear")
	assert.Empty(t, s.Page(10, nil), "after Clear")
}

func TestSortedSetPageDoesNotAllocate(t *testing.T) {
	s := readmodel.NewSortedSet[int]()
	for i := range 10000 {
		s.Add(i * 3)
	}
	buf := make([]int, 0, 20)
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = s.PageAfter(4000, 20, buf[:0]) }), "allocations per PageAfter")
	assert.Equal(t, []int{4002, 4005}, buf[:2])
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = s.Page(20, buf[:0]) }), "allocations per Page")
	assert.Equal(t, []int{0, 3}, buf[:2])
}

// TestSortedSetAgainstReference compares random operations and paging
// with a sorted slice.
func TestSortedSetAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	s := readmodel.NewSortedSet[int]()
	ref := map[int]bool{}
	for step := range 30000 {
		k := rng.IntN(4000)
		if rng.IntN(100) < 60 {
			require.Equal(t, !ref[k], s.Add(k), "step %d: Add(%d)", step, k)
			ref[k] = true
		} else {
			require.Equal(t, ref[k], s.Remove(k), "step %d: Remove(%d)", step, k)
			delete(ref, k)
		}
		if step%300 == 0 {
			want := slices.Sorted(maps.Keys(ref))
			after := rng.IntN(4100) - 50
			limit := rng.IntN(100)
			i, found := slices.BinarySearch(want, after)
			if found {
				i++
			}
			requireSameSlice(t, want[i:min(len(want), i+limit)], s.PageAfter(after, limit, nil), "step %d: PageAfter(%d, %d)", step, after, limit)
			require.Equal(t, len(want), s.Len(), "step %d: Len", step)
		}
	}
}

func TestIndexBasics(t *testing.T) {
	x := readmodel.NewIndex[string, string]()
	x.Add("acme", "p3")
	x.Add("acme", "p1")
	x.Add("acme", "p2")
	x.Add("globex", "p9")
	assert.False(t, x.Add("acme", "p1"), "Add of a present key")
	assert.Equal(t, []string{"p1", "p2", "p3"}, x.Keys("acme", nil))
	assert.Empty(t, x.Keys("nobody", nil), "Keys of a missing group")
	assert.Equal(t, 3, x.Len("acme"))
	assert.Zero(t, x.Len("nobody"))
	assert.Equal(t, 2, x.GroupCount())
	assert.True(t, x.Contains("acme", "p2"))
	assert.False(t, x.Contains("globex", "p2"))
	assert.False(t, x.Contains("nobody", "p2"))
	assert.Equal(t, []string{"p2"}, x.PageAfter("acme", "p1", 1, nil))
	assert.Equal(t, []string{"p1", "p2"}, x.Page("acme", 2, nil), "first page")
	assert.Empty(t, x.Page("nobody", 2, nil), "first page of a missing group")
	assert.Equal(t, []string{"p1", "p2", "p3"}, slices.Collect(x.All("acme")))
	assert.True(t, x.Remove("globex", "p9"), "Remove of a present key")
	assert.False(t, x.Remove("globex", "p9"), "Remove of an absent key")
	assert.False(t, x.Remove("nobody", "p9"), "Remove from a missing group")
	assert.Equal(t, 1, x.GroupCount(), "an empty group is dropped")
	x.Clear()
	assert.Zero(t, x.GroupCount(), "after Clear")
	assert.Zero(t, x.Len("acme"), "after Clear")
	assert.Empty(t, slices.Collect(x.Groups()), "after Clear")
}

func TestIndexGroups(t *testing.T) {
	x := readmodel.NewIndex[string, int]()
	assert.Empty(t, slices.Collect(x.Groups()), "Groups of an empty Index")
	want := map[string][]int{}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		g, k := fmt.Sprintf("g%d", rng.IntN(40)), rng.IntN(8)
		if rng.IntN(3) == 0 {
			x.Remove(g, k)
			if i := slices.Index(want[g], k); i >= 0 {
				want[g] = slices.Delete(want[g], i, i+1)
			}
			if len(want[g]) == 0 {
				delete(want, g)
			}
			continue
		}
		if x.Add(g, k) {
			want[g] = append(want[g], k)
		}
	}
	got := slices.Sorted(x.Groups())
	require.Equal(t, slices.Sorted(maps.Keys(want)), got, "Groups")
	assert.Equal(t, x.GroupCount(), len(got), "Groups and GroupCount agree")
	for _, g := range got {
		assert.Equal(t, slices.Sorted(slices.Values(want[g])), x.Keys(g, nil), "Keys(%s)", g)
	}
	n := 0
	for range x.Groups() {
		n++
		break
	}
	assert.Equal(t, 1, n, "Groups stops when the loop breaks")
}

func TestIndexKeysDoesNotAllocate(t *testing.T) {
	x := readmodel.NewIndex[int, int]()
	for i := range 100 {
		x.Add(i%5, i)
	}
	buf := make([]int, 0, 32)
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = x.Keys(3, buf[:0]) }), "allocations per Keys")
	assert.Len(t, buf, 20)
}

// String keys take the key-prefix shortcut in comparisons; keys that share
// long prefixes, differ only past 8 bytes, or hold zero bytes must still
// order exactly like the strings.
func TestRankingStringKeysAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	alphabet := []string{"", "\x00", "a", "ab", "abcdefgh", "abcdefghi", "abcdefgh\x00", "b", "product-", "product-0", "product-00"}
	key := func() string {
		return alphabet[rng.IntN(len(alphabet))] + alphabet[rng.IntN(len(alphabet))]
	}
	r := readmodel.NewRanking[string]()
	ref := map[string]float64{}
	for step := range 5000 {
		k := key()
		if rng.IntN(5) == 0 {
			r.Remove(k)
			delete(ref, k)
		} else {
			s := float64(rng.IntN(6)) // many ties, so keys decide
			if rng.IntN(50) == 0 {
				s = math.NaN()
			}
			r.Set(k, s)
			ref[k] = s
		}
		if step%25 == 0 {
			want := make([]readmodel.Ranked[string], 0, len(ref))
			for k, s := range ref {
				want = append(want, readmodel.Ranked[string]{Key: k, Score: s})
			}
			slices.SortFunc(want, func(a, b readmodel.Ranked[string]) int {
				if c := cmp.Compare(b.Score, a.Score); c != 0 {
					return c
				}
				return cmp.Compare(a.Key, b.Key)
			})
			got := slices.Collect(r.All())
			require.Len(t, got, len(want), "step %d: entries", step)
			for i := range got {
				require.Equal(t, want[i].Key, got[i].Key, "step %d: entry %d", step, i)
				require.True(t, sameFloat(want[i].Score, got[i].Score), "step %d: entry %d = %q %v, want %v",
					step, i, got[i].Key, got[i].Score, want[i].Score)
			}
		}
	}
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// TestRankingSetMany loads random entries (ties, repeated keys) into an
// empty ranking and into one that has entries, and checks that the result
// is what calling Set for each entry gives.
func TestRankingSetMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 2))
	entries := func(n int) []readmodel.Ranked[string] {
		es := make([]readmodel.Ranked[string], n)
		for i := range es {
			es[i] = readmodel.Ranked[string]{Key: fmt.Sprintf("k%04d", rng.IntN(n)), Score: float64(rng.IntN(9)) / 2}
		}
		return es
	}
	for _, n := range []int{0, 1, 5, 200, 3000} {
		for _, prefilled := range []bool{false, true} {
			bulk, ref := readmodel.NewRanking[string](), readmodel.NewRanking[string]()
			if prefilled {
				for _, e := range entries(n/2 + 1) {
					bulk.Set(e.Key, e.Score)
					ref.Set(e.Key, e.Score)
				}
			}
			es := entries(n)
			bulk.SetMany(es)
			for _, e := range es {
				ref.Set(e.Key, e.Score)
			}
			require.Equal(t, ref.Len(), bulk.Len(), "n=%d prefilled=%v", n, prefilled)
			require.Equal(t, slices.Collect(ref.All()), slices.Collect(bulk.All()), "n=%d prefilled=%v", n, prefilled)
			require.Equal(t, ref.Top(10, nil), bulk.Top(10, nil), "n=%d prefilled=%v", n, prefilled)
			for _, e := range es {
				got, ok := bulk.Score(e.Key)
				want, _ := ref.Score(e.Key)
				require.True(t, ok)
				require.Equal(t, want, got, "score of %s", e.Key)
			}
			// The loaded ranking keeps working.
			if n > 0 {
				bulk.Set(es[0].Key, 100)
				ref.Set(es[0].Key, 100)
				bulk.Remove(es[len(es)-1].Key)
				ref.Remove(es[len(es)-1].Key)
				require.Equal(t, slices.Collect(ref.All()), slices.Collect(bulk.All()))
			}
		}
	}
}

// TestIndexAddMany adds random batches (duplicates, keys already present,
// new and existing groups) with AddMany to one Index and with Add to
// another, and checks that they agree and that AddMany counts the absent
// keys.
func TestIndexAddMany(t *testing.T) {
	bulk, ref := readmodel.NewIndex[string, int](), readmodel.NewIndex[string, int]()
	rng := rand.New(rand.NewPCG(8, 9))
	for step := range 300 {
		g := fmt.Sprintf("g%d", rng.IntN(12))
		batch := make([]int, rng.IntN(80))
		for i := range batch {
			batch[i] = rng.IntN(400)
		}
		want := 0
		for _, k := range batch {
			if ref.Add(g, k) {
				want++
			}
		}
		require.Equal(t, want, bulk.AddMany(g, batch), "step %d: AddMany count", step)
		require.Equal(t, ref.Keys(g, nil), bulk.Keys(g, nil), "step %d: Keys(%s)", step, g)
		require.Equal(t, ref.Len(g), bulk.Len(g), "step %d: Len(%s)", step, g)
	}
	require.Equal(t, ref.GroupCount(), bulk.GroupCount())
	assert.Zero(t, bulk.AddMany("empty", nil))
	assert.Zero(t, bulk.GroupCount()-ref.GroupCount(), "AddMany of no keys makes no group")
}
