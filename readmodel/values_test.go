package readmodel_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/readmodel"
)

func TestRunningAverage(t *testing.T) {
	var a readmodel.RunningAverage
	assert.Zero(t, a.Count(), "zero value")
	assert.Zero(t, a.Sum(), "zero value")
	assert.Zero(t, a.Mean(), "zero value")
	assert.Zero(t, a.Round(1), "zero value")
	b := a.Add(4).Add(5).Add(3)
	assert.Zero(t, a.Count(), "Add modified the receiver")
	assert.EqualValues(t, 3, b.Count(), "after 4,5,3")
	assert.Equal(t, 12.0, b.Sum(), "after 4,5,3")
	assert.Equal(t, 4.0, b.Mean(), "after 4,5,3")
	c := b.Remove(3)
	assert.EqualValues(t, 3, b.Count(), "Remove modified the receiver")
	assert.EqualValues(t, 2, c.Count(), "after Remove")
	assert.Equal(t, 4.5, c.Mean(), "after Remove")
	assert.Equal(t, readmodel.RunningAverage{}, c.Remove(4).Remove(5), "removing everything")
	assert.Equal(t, a, a.Remove(1), "Remove on empty")
}

func TestRunningAverageNoDrift(t *testing.T) {
	// Adding and removing many non-representable values must not leave
	// float residue behind.
	rng := rand.New(rand.NewPCG(1, 2))
	var a readmodel.RunningAverage
	xs := make([]float64, 10000)
	for i := range xs {
		xs[i] = rng.Float64() * 1e6
		a = a.Add(xs[i])
	}
	a = a.Add(0.1).Add(0.2)
	for _, x := range xs {
		a = a.Remove(x)
	}
	assert.EqualValues(t, 2, a.Count(), "after removing")
	assert.InDelta(t, 0.3, a.Sum(), 1e-12, "after removing")
	assert.Equal(t, 0.15, a.Round(2), "after removing")
}

func TestRunningAverageRound(t *testing.T) {
	mean := func(xs ...float64) readmodel.RunningAverage {
		var a readmodel.RunningAverage
		for _, x := range xs {
			a = a.Add(x)
		}
		return a
	}
	for _, tc := range []struct {
		a        readmodel.RunningAverage
		decimals int
		want     float64
	}{
		{mean(4, 4.5), 1, 4.3},             // 4.25: half away from zero
		{mean(4.35), 1, 4.4},               // 4.35 is stored as 4.3499999999999996
		{mean(4.1, 4.6), 1, 4.4},           // 8.7/2 = 4.3499999999999996
		{mean(1.005), 2, 1.01},             // 1.00499999999999989...
		{mean(2.675), 2, 2.68},             // the classic
		{mean(-4.25), 1, -4.3},             // away from zero for negatives
		{mean(-0.04), 1, 0},                // no -0
		{mean(4, 5, 5), 1, 4.7},            // 4.666...
		{mean(4, 5, 5), 0, 5},              //
		{mean(1234.5), -1, 1230},           // tens
		{mean(1235), -1, 1240},             // half away at tens
		{mean(0.000012345), 7, 0.0000123},  // small numbers
		{mean(0.000012355), 8, 0.00001236}, //
		{mean(3), 2, 3},                    //
		{mean(1e20 + 1), 1, 1e20},          // nothing to round
		{mean(0.3), 20, 0.3},               //
		{mean(0.4), 0, 0},                  //
		{mean(0.5), 0, 1},                  //
	} {
		assert.Equal(t, tc.want, tc.a.Round(tc.decimals), "Round(%v, %d)", tc.a.Mean(), tc.decimals)
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = mean(4.35).Round(1) }), "allocations per Round")
}

func TestRunningAverageJSON(t *testing.T) {
	a := readmodel.RunningAverage{}.Add(4).Add(5)
	data, err := json.Marshal(struct{ Rating readmodel.RunningAverage }{a})
	require.NoError(t, err)
	assert.Equal(t, `{"Rating":{"count":2,"sum":9}}`, string(data))
	var back struct{ Rating readmodel.RunningAverage }
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, a, back.Rating, "round trip")
	for _, bad := range []string{`{"count":-1,"sum":0}`, `{"count":0,"sum":3}`, `[1]`} {
		var x readmodel.RunningAverage
		assert.Error(t, json.Unmarshal([]byte(bad), &x), "Unmarshal(%s)", bad)
	}
}

func TestRecent(t *testing.T) {
	r := readmodel.NewRecent[string](3)
	assert.Zero(t, r.Len(), "new Recent")
	assert.Equal(t, 3, r.Cap(), "new Recent")
	assert.Empty(t, r.Items(), "new Recent")
	r1 := r.Push("a")
	r2 := r1.Push("b").Push("c")
	r3 := r2.Push("d") // drops "a"
	assert.Equal(t, []string{"d", "c", "b"}, r3.Items())
	assert.Equal(t, []string{"d", "c", "b"}, slices.Collect(r3.All()))
	assert.Equal(t, "d", r3.At(0))
	assert.Equal(t, "b", r3.At(2))
	assert.Equal(t, 3, r3.Len())
	// Earlier versions are untouched (copy-on-write).
	assert.Equal(t, []string{"a"}, r1.Items(), "Push modified an earlier version")
	assert.Equal(t, []string{"c", "b", "a"}, r2.Items(), "Push modified an earlier version")
	// Two pushes onto the same version do not interfere.
	x, y := r2.Push("x"), r2.Push("y")
	assert.Equal(t, "x", x.At(0), "sibling pushes interfered")
	assert.Equal(t, "y", y.At(0), "sibling pushes interfered")
	assert.Equal(t, []string{"c", "b", "a"}, r2.Items(), "sibling pushes interfered")
	// Items is a copy.
	items := r3.Items()
	items[0] = "changed"
	assert.Equal(t, "d", r3.At(0), "Items shares the backing array")
	// All stops when asked.
	for range r3.All() {
		break
	}
}

// TestRecentVersionsNeverChange pushes along random lines of versions (a
// push on the newest version, which may reuse the shared array, or on an
// older one, which must not) and checks that every version ever returned
// still shows exactly what it showed when it was made.
func TestRecentVersionsNeverChange(t *testing.T) {
	rnd := rand.New(rand.NewPCG(15, 15))
	for _, capacity := range []int{1, 2, 3, 5} {
		type version struct {
			r    readmodel.Recent[int]
			want []int
		}
		versions := []version{{readmodel.NewRecent[int](capacity), nil}}
		for i := range 2000 {
			from := len(versions) - 1 // mostly extend the newest line
			if rnd.IntN(4) == 0 {
				from = rnd.IntN(len(versions))
			}
			v := versions[from]
			want := append([]int{i}, v.want...)
			want = want[:min(len(want), capacity)]
			versions = append(versions, version{v.r.Push(i), want})
		}
		for k, v := range versions {
			require.Equal(t, v.want, v.r.Items(), "capacity %d, version %d", capacity, k)
			require.Equal(t, len(v.want), v.r.Len())
			for i, x := range v.want {
				require.Equal(t, x, v.r.At(i))
			}
		}
	}
}

// TestRecentConcurrentPushes pushes onto one version from several
// goroutines at once (run with -race): each gets its own item, and the
// version they share is unchanged.
func TestRecentConcurrentPushes(t *testing.T) {
	base := readmodel.NewRecent[int](4).Push(1).Push(2)
	const n = 8
	got := make([]readmodel.Recent[int], n)
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[g] = base.Push(100 + g).Push(200 + g)
		}()
	}
	wg.Wait()
	for g, r := range got {
		assert.Equal(t, []int{200 + g, 100 + g, 2, 1}, r.Items(), "goroutine %d", g)
	}
	assert.Equal(t, []int{2, 1}, base.Items())
}

// TestRecentPushAllocations: pushing along one line of versions, as a
// projection does, allocates a new array (one allocation) once every
// Cap/2+1 pushes, not on every push.
func TestRecentPushAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	for _, tc := range []struct{ capacity, every int }{{1, 2}, {3, 2}, {5, 3}, {8, 5}} {
		r := readmodel.NewRecent[string](tc.capacity)
		allocs := testing.AllocsPerRun(600, func() { r = r.Push("x") })
		assert.LessOrEqual(t, allocs, 1.0/float64(tc.every)+0.01, "allocations per Push, capacity %d", tc.capacity)
	}
}

func TestRecentPanics(t *testing.T) {
	assert.Panics(t, func() { readmodel.NewRecent[int](0) }, "NewRecent(0)")
	assert.Panics(t, func() { readmodel.Recent[int]{}.Push(1) }, "Push on zero Recent")
	assert.Panics(t, func() { readmodel.NewRecent[int](2).Push(1).At(1) }, "At out of range")
}

func TestRecentJSON(t *testing.T) {
	r := readmodel.NewRecent[int](3).Push(1).Push(2)
	data, err := json.Marshal(r)
	require.NoError(t, err)
	assert.Equal(t, `{"cap":3,"items":[2,1]}`, string(data))
	var back readmodel.Recent[int]
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, 3, back.Cap(), "round trip")
	assert.Equal(t, []int{2, 1}, back.Items(), "round trip")
	assert.Equal(t, 3, back.Push(3).Push(4).Len(), "a decoded Recent keeps its capacity")
	// The zero Recent round-trips too.
	data, err = json.Marshal(readmodel.Recent[int]{})
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &back), "zero Recent round trip")
	assert.Zero(t, back.Cap(), "zero Recent round trip")
	for _, bad := range []string{`{"cap":1,"items":[1,2]}`, `{"cap":-1,"items":[]}`} {
		err := json.Unmarshal([]byte(bad), &back)
		if assert.Error(t, err, "Unmarshal(%s)", bad) {
			assert.Contains(t, err.Error(), "readmodel", "Unmarshal(%s)", bad)
		}
	}
}

func TestRunningAverageRoundExtremeDecimals(t *testing.T) {
	// Found by FuzzRound: with many negative decimals the power of ten
	// overflowed to +Inf and 0 × Inf gave NaN.
	for _, tc := range []struct {
		x        float64
		decimals int
		want     float64
	}{
		{0.5, -364, 0},
		{-0.5, -364, 0},
		{4.5, math.MinInt, 0},
		{1e300, -400, 0},
		{1e300, -309, 0},
		{1.5e308, -308, math.Inf(1)}, // rounding overflows the float64 range: +Inf
		{-1.5e308, -308, math.Inf(-1)},
		{4.25, 400, 4.25}, // nothing to round
		{4.25, math.MaxInt, 4.25},
	} {
		got := readmodel.RunningAverage{}.Add(tc.x).Round(tc.decimals)
		assert.Equal(t, tc.want, got, "Round(%v, %d)", tc.x, tc.decimals)
		assert.Equal(t, math.Signbit(tc.want), math.Signbit(got), "sign of Round(%v, %d) = %v", tc.x, tc.decimals, got)
	}
}

func TestRunningAverageCountLimit(t *testing.T) {
	// Found by FuzzRunningAverage: a JSON count near MaxInt64 was accepted
	// and a few Adds later the count was negative. A RunningAverage holds
	// at most 1<<53 values.
	const limit = 1 << 53
	for _, bad := range []string{
		`{"count":9223372036854775807,"sum":1}`,
		`{"count":9007199254740993,"sum":1}`, // limit+1
	} {
		var a readmodel.RunningAverage
		assert.Error(t, json.Unmarshal([]byte(bad), &a), "Unmarshal(%s)", bad)
	}
	var a readmodel.RunningAverage
	require.NoError(t, json.Unmarshal([]byte(`{"count":9007199254740992,"sum":4}`), &a), "Unmarshal at the limit")
	for range 3 {
		a = a.Add(5)
		require.EqualValues(t, limit, a.Count(), "Add on a full average leaves it unchanged")
		require.Equal(t, 4.0, a.Sum(), "Add on a full average leaves it unchanged")
	}
	assert.EqualValues(t, limit-1, a.Remove(4).Count(), "Remove on a full average")
}

// TestAverageOf: AverageOf gives the average with that count and sum, the
// one JSON decoding gives, and refuses what UnmarshalJSON refuses.
func TestAverageOf(t *testing.T) {
	a := readmodel.RunningAverage{}.Add(4).Add(5).Add(3)
	b, err := readmodel.AverageOf(a.Count(), a.Sum())
	require.NoError(t, err)
	assert.Equal(t, a.Count(), b.Count())
	assert.Equal(t, a.Sum(), b.Sum())
	assert.Equal(t, a.Mean(), b.Mean())
	assert.Equal(t, 4.0, b.Add(4).Mean(), "it keeps averaging")
	z, err := readmodel.AverageOf(0, 0)
	require.NoError(t, err)
	assert.Equal(t, readmodel.RunningAverage{}, z)
	for _, bad := range []struct {
		n   int64
		sum float64
	}{{-1, 0}, {1<<53 + 1, 1}, {0, 1}, {1, math.NaN()}, {1, math.Inf(-1)}} {
		_, err := readmodel.AverageOf(bad.n, bad.sum)
		assert.Error(t, err, "count %d sum %g", bad.n, bad.sum)
	}
}

// TestRecentOf: RecentOf gives a Recent with that capacity and items
// (newest first), that pushes like any other without changing what it
// was built from, and refuses a negative capacity or too many items.
func TestRecentOf(t *testing.T) {
	items := []int{3, 2, 1}
	r, err := readmodel.RecentOf(4, items)
	require.NoError(t, err)
	items[0] = 99 // the Recent has its own copy
	assert.Equal(t, []int{3, 2, 1}, r.Items())
	assert.Equal(t, 4, r.Cap())
	r2 := r.Push(4).Push(5)
	assert.Equal(t, []int{5, 4, 3, 2}, r2.Items())
	assert.Equal(t, []int{3, 2, 1}, r.Items(), "pushing leaves it unchanged")
	z, err := readmodel.RecentOf[int](0, nil)
	require.NoError(t, err)
	assert.Zero(t, z.Len())
	assert.Zero(t, z.Cap())
	_, err = readmodel.RecentOf(-1, []int(nil))
	assert.Error(t, err)
	_, err = readmodel.RecentOf(1, []int{1, 2})
	assert.Error(t, err)
}
