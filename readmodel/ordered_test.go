package readmodel_test

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cqrskit/cqrs/readmodel"
)

func TestRankingBasics(t *testing.T) {
	r := readmodel.NewRanking[string]()
	if got := r.Top(3, nil); len(got) != 0 || r.Len() != 0 {
		t.Fatalf("empty ranking: Top %v, Len %d", got, r.Len())
	}
	r.Set("b", 4.5)
	r.Set("a", 4.5) // ties with b: ascending key wins
	r.Set("c", 3)
	r.Set("d", 5)
	want := []readmodel.Ranked[string]{{"d", 5}, {"a", 4.5}, {"b", 4.5}, {"c", 3}}
	if got := r.Top(10, nil); !slices.Equal(got, want) {
		t.Fatalf("Top = %v, want %v", got, want)
	}
	if got := r.Top(2, nil); !slices.Equal(got, want[:2]) {
		t.Fatalf("Top(2) = %v", got)
	}
	if got := r.Top(0, nil); len(got) != 0 {
		t.Fatalf("Top(0) = %v", got)
	}
	if got := r.Top(-1, nil); len(got) != 0 {
		t.Fatalf("Top(-1) = %v", got)
	}
	// Top appends to dst.
	prefix := []readmodel.Ranked[string]{{"x", 0}}
	if got := r.Top(1, prefix); !slices.Equal(got, []readmodel.Ranked[string]{{"x", 0}, {"d", 5}}) {
		t.Fatalf("Top with a prefix = %v", got)
	}

	r.Set("c", 6) // move up
	r.Set("d", 1) // move down
	want = []readmodel.Ranked[string]{{"c", 6}, {"a", 4.5}, {"b", 4.5}, {"d", 1}}
	if got := slices.Collect(r.All()); !slices.Equal(got, want) {
		t.Fatalf("after moves: %v, want %v", got, want)
	}
	if s, ok := r.Score("c"); !ok || s != 6 {
		t.Fatalf("Score(c) = %v, %v", s, ok)
	}
	if _, ok := r.Score("zz"); ok {
		t.Fatalf("Score of an unranked key")
	}
	r.Set("c", 6) // no-op
	if r.Len() != 4 {
		t.Fatalf("Len = %d", r.Len())
	}

	r.Remove("a")
	r.Remove("never")
	if got := r.Top(10, nil); !slices.Equal(got, []readmodel.Ranked[string]{{"c", 6}, {"b", 4.5}, {"d", 1}}) {
		t.Fatalf("after Remove: %v", got)
	}
	r.Clear()
	if r.Len() != 0 || len(r.Top(5, nil)) != 0 {
		t.Fatalf("not empty after Clear")
	}
	if _, ok := r.Score("c"); ok {
		t.Fatalf("Score survived Clear")
	}
	r.Set("e", 1)
	if r.Len() != 1 {
		t.Fatalf("unusable after Clear")
	}
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
	if want := []string{"inf", "negzero", "zero", "neginf", "nan"}; !slices.Equal(keys, want) {
		t.Fatalf("order = %v, want %v", keys, want)
	}
	// Moving between -0 and +0 updates the stored score.
	r.Set("negzero", 0)
	if s, _ := r.Score("negzero"); math.Signbit(s) {
		t.Fatalf("Score kept -0")
	}
	r.Set("nan", math.NaN()) // no-op, not a duplicate
	r.Remove("nan")
	if r.Len() != 4 {
		t.Fatalf("Len = %d after removing NaN", r.Len())
	}
}

func TestRankingTopDoesNotAllocate(t *testing.T) {
	r := readmodel.NewRanking[string]()
	for i := range 1000 {
		r.Set(fmt.Sprint("p", i), float64(i%97))
	}
	buf := make([]readmodel.Ranked[string], 0, 10)
	if n := testing.AllocsPerRun(100, func() { buf = r.Top(10, buf[:0]) }); n != 0 {
		t.Fatalf("Top allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = r.Score("p500") }); n != 0 {
		t.Fatalf("Score allocates %v times", n)
	}
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
				if s, ok := r.Score(k); s != want || ok != wok {
					t.Fatalf("step %d: Score(%d) = %v, %v", step, k, s, ok)
				}
				if step%20 == 0 { // the snapshot path: the best entries, lock-free
					want := sortedRanking(ref)
					for _, n := range []int{1, 10, readmodel.RankingTopCache} {
						if got := r.Top(n, nil); !slices.Equal(got, want[:min(n, len(want))]) {
							t.Fatalf("step %d: Top(%d) differs from the reference", step, n)
						}
					}
				}
				if step%200 == 0 {
					want := sortedRanking(ref)
					n := rng.IntN(len(want) + 5)
					if got := r.Top(n, nil); !slices.Equal(got, want[:min(n, len(want))]) {
						t.Fatalf("step %d: Top(%d) differs", step, n)
					}
					if r.Len() != len(ref) {
						t.Fatalf("step %d: Len = %d, want %d", step, r.Len(), len(ref))
					}
				}
			}
			if got := slices.Collect(r.All()); !slices.Equal(got, sortedRanking(ref)) {
				t.Fatalf("final order differs")
			}
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
		if !s.Add(k) {
			t.Fatalf("Add(%q) = false", k)
		}
	}
	if s.Add("c") {
		t.Fatalf("Add of a present key = true")
	}
	if !s.Contains("q") || s.Contains("b") || s.Len() != 5 {
		t.Fatalf("Contains/Len wrong")
	}
	if got := s.Page(2, nil); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("first page = %v", got)
	}
	if got := s.PageAfter("c", 2, nil); !slices.Equal(got, []string{"m", "q"}) {
		t.Fatalf("page after c = %v", got)
	}
	if got := s.PageAfter("d", 10, nil); !slices.Equal(got, []string{"m", "q", "x"}) {
		t.Fatalf("page after an absent cursor = %v", got)
	}
	if got := s.PageAfter("x", 10, nil); len(got) != 0 {
		t.Fatalf("page after the last key = %v", got)
	}
	if got := s.Page(0, nil); len(got) != 0 {
		t.Fatalf("limit 0 = %v", got)
	}
	if !s.Remove("m") || s.Remove("m") {
		t.Fatalf("Remove results wrong")
	}
	if got := slices.Collect(s.All()); !slices.Equal(got, []string{"a", "c", "q", "x"}) {
		t.Fatalf("All = %v", got)
	}
	s.Clear()
	if s.Len() != 0 || len(s.Page(10, nil)) != 0 {
		t.Fatalf("not empty after Clear")
	}
}

func TestSortedSetPageDoesNotAllocate(t *testing.T) {
	s := readmodel.NewSortedSet[int]()
	for i := range 10000 {
		s.Add(i * 3)
	}
	buf := make([]int, 0, 20)
	if n := testing.AllocsPerRun(100, func() { buf = s.PageAfter(4000, 20, buf[:0]) }); n != 0 {
		t.Fatalf("Page allocates %v times", n)
	}
	if want := []int{4002, 4005}; !slices.Equal(buf[:2], want) {
		t.Fatalf("Page = %v", buf[:2])
	}
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
			if s.Add(k) == ref[k] {
				t.Fatalf("step %d: Add(%d) result wrong", step, k)
			}
			ref[k] = true
		} else {
			if s.Remove(k) != ref[k] {
				t.Fatalf("step %d: Remove(%d) result wrong", step, k)
			}
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
			if got := s.PageAfter(after, limit, nil); !slices.Equal(got, want[i:min(len(want), i+limit)]) {
				t.Fatalf("step %d: Page(%d, %d) differs", step, after, limit)
			}
			if s.Len() != len(want) {
				t.Fatalf("step %d: Len = %d, want %d", step, s.Len(), len(want))
			}
		}
	}
}

func TestIndexBasics(t *testing.T) {
	x := readmodel.NewIndex[string, string]()
	x.Add("acme", "p3")
	x.Add("acme", "p1")
	x.Add("acme", "p2")
	x.Add("globex", "p9")
	if x.Add("acme", "p1") {
		t.Fatalf("Add of a present key = true")
	}
	if got := x.Keys("acme", nil); !slices.Equal(got, []string{"p1", "p2", "p3"}) {
		t.Fatalf("Keys = %v", got)
	}
	if got := x.Keys("nobody", nil); len(got) != 0 {
		t.Fatalf("Keys of a missing group = %v", got)
	}
	if x.Len("acme") != 3 || x.Len("nobody") != 0 || x.GroupCount() != 2 {
		t.Fatalf("Len/GroupCount wrong")
	}
	if !x.Contains("acme", "p2") || x.Contains("globex", "p2") || x.Contains("nobody", "p2") {
		t.Fatalf("Contains wrong")
	}
	if got := x.PageAfter("acme", "p1", 1, nil); !slices.Equal(got, []string{"p2"}) {
		t.Fatalf("Page = %v", got)
	}
	if got := x.Page("acme", 2, nil); !slices.Equal(got, []string{"p1", "p2"}) {
		t.Fatalf("first Page = %v", got)
	}
	if got := slices.Collect(x.All("acme")); !slices.Equal(got, []string{"p1", "p2", "p3"}) {
		t.Fatalf("All = %v", got)
	}
	if !x.Remove("globex", "p9") || x.Remove("globex", "p9") || x.Remove("nobody", "p9") {
		t.Fatalf("Remove results wrong")
	}
	if x.GroupCount() != 1 {
		t.Fatalf("empty group not dropped: GroupCount = %d", x.GroupCount())
	}
	x.Clear()
	if x.GroupCount() != 0 || x.Len("acme") != 0 || len(slices.Collect(x.Groups())) != 0 {
		t.Fatalf("not empty after Clear")
	}
}

func TestIndexGroups(t *testing.T) {
	x := readmodel.NewIndex[string, int]()
	if got := slices.Collect(x.Groups()); len(got) != 0 {
		t.Fatalf("Groups of an empty Index = %v", got)
	}
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
	if wantGroups := slices.Sorted(maps.Keys(want)); !slices.Equal(got, wantGroups) {
		t.Fatalf("Groups = %v, want %v", got, wantGroups)
	}
	if len(got) != x.GroupCount() {
		t.Fatalf("Groups yields %d groups, GroupCount = %d", len(got), x.GroupCount())
	}
	for _, g := range got {
		if ks := x.Keys(g, nil); !slices.Equal(ks, slices.Sorted(slices.Values(want[g]))) {
			t.Fatalf("Keys(%s) = %v, want %v", g, ks, want[g])
		}
	}
	n := 0
	for range x.Groups() {
		n++
		break
	}
	if n != 1 {
		t.Fatalf("Groups did not stop when the loop broke: %d", n)
	}
}

func TestIndexKeysDoesNotAllocate(t *testing.T) {
	x := readmodel.NewIndex[int, int]()
	for i := range 100 {
		x.Add(i%5, i)
	}
	buf := make([]int, 0, 32)
	if n := testing.AllocsPerRun(100, func() { buf = x.Keys(3, buf[:0]) }); n != 0 {
		t.Fatalf("Keys allocates %v times", n)
	}
	if len(buf) != 20 {
		t.Fatalf("Keys returned %d keys", len(buf))
	}
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
			if len(got) != len(want) {
				t.Fatalf("step %d: %d entries, want %d", step, len(got), len(want))
			}
			for i := range got {
				if got[i].Key != want[i].Key || !sameFloat(got[i].Score, want[i].Score) {
					t.Fatalf("step %d: entry %d = %q %v, want %q %v", step, i, got[i].Key, got[i].Score, want[i].Key, want[i].Score)
				}
			}
		}
	}
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
