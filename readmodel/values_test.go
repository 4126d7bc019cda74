package readmodel_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cqrskit/cqrs/readmodel"
)

func TestRunningAverage(t *testing.T) {
	var a readmodel.RunningAverage
	if a.Count() != 0 || a.Sum() != 0 || a.Mean() != 0 || a.Round(1) != 0 {
		t.Fatalf("zero value not empty: %+v", a)
	}
	b := a.Add(4).Add(5).Add(3)
	if a.Count() != 0 {
		t.Fatalf("Add modified the receiver")
	}
	if b.Count() != 3 || b.Sum() != 12 || b.Mean() != 4 {
		t.Fatalf("after 4,5,3: count %d sum %v mean %v", b.Count(), b.Sum(), b.Mean())
	}
	c := b.Remove(3)
	if b.Count() != 3 || c.Count() != 2 || c.Mean() != 4.5 {
		t.Fatalf("Remove: %d %v", c.Count(), c.Mean())
	}
	if e := c.Remove(4).Remove(5); e != (readmodel.RunningAverage{}) {
		t.Fatalf("removing everything left %+v", e)
	}
	if e := a.Remove(1); e != a {
		t.Fatalf("Remove on empty = %+v", e)
	}
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
	if a.Count() != 2 || math.Abs(a.Sum()-0.3) > 1e-12 || a.Round(2) != 0.15 {
		t.Fatalf("after removing: count %d sum %.17g", a.Count(), a.Sum())
	}
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
		if got := tc.a.Round(tc.decimals); got != tc.want {
			t.Errorf("Round(%v, %d) = %v, want %v", tc.a.Mean(), tc.decimals, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = mean(4.35).Round(1) }); n != 0 {
		t.Errorf("Round allocates %v times", n)
	}
}

func TestRunningAverageJSON(t *testing.T) {
	a := readmodel.RunningAverage{}.Add(4).Add(5)
	data, err := json.Marshal(struct{ Rating readmodel.RunningAverage }{a})
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"Rating":{"count":2,"sum":9}}` {
		t.Fatalf("JSON = %s", data)
	}
	var back struct{ Rating readmodel.RunningAverage }
	if err := json.Unmarshal(data, &back); err != nil || back.Rating != a {
		t.Fatalf("round trip = %+v, %v", back.Rating, err)
	}
	for _, bad := range []string{`{"count":-1,"sum":0}`, `{"count":0,"sum":3}`, `[1]`} {
		var x readmodel.RunningAverage
		if err := json.Unmarshal([]byte(bad), &x); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
}

func TestRecent(t *testing.T) {
	r := readmodel.NewRecent[string](3)
	if r.Len() != 0 || r.Cap() != 3 || len(r.Items()) != 0 {
		t.Fatalf("new Recent not empty")
	}
	r1 := r.Push("a")
	r2 := r1.Push("b").Push("c")
	r3 := r2.Push("d") // drops "a"
	if got := r3.Items(); !slices.Equal(got, []string{"d", "c", "b"}) {
		t.Fatalf("Items = %v", got)
	}
	if got := slices.Collect(r3.All()); !slices.Equal(got, []string{"d", "c", "b"}) {
		t.Fatalf("All = %v", got)
	}
	if r3.At(0) != "d" || r3.At(2) != "b" || r3.Len() != 3 {
		t.Fatalf("At/Len wrong")
	}
	// Earlier versions are untouched (copy-on-write).
	if !slices.Equal(r1.Items(), []string{"a"}) || !slices.Equal(r2.Items(), []string{"c", "b", "a"}) {
		t.Fatalf("Push modified an earlier version: %v %v", r1.Items(), r2.Items())
	}
	// Two pushes onto the same version do not interfere.
	x, y := r2.Push("x"), r2.Push("y")
	if x.At(0) != "x" || y.At(0) != "y" || !slices.Equal(r2.Items(), []string{"c", "b", "a"}) {
		t.Fatalf("sibling pushes interfered")
	}
	// Items is a copy.
	items := r3.Items()
	items[0] = "changed"
	if r3.At(0) != "d" {
		t.Fatalf("Items shares the backing array")
	}
	// All stops when asked.
	for range r3.All() {
		break
	}
}

func TestRecentPanics(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("NewRecent(0)", func() { readmodel.NewRecent[int](0) })
	mustPanic("Push on zero Recent", func() { readmodel.Recent[int]{}.Push(1) })
	mustPanic("At out of range", func() { readmodel.NewRecent[int](2).Push(1).At(1) })
}

func TestRecentJSON(t *testing.T) {
	r := readmodel.NewRecent[int](3).Push(1).Push(2)
	data, err := json.Marshal(r)
	if err != nil || string(data) != `{"cap":3,"items":[2,1]}` {
		t.Fatalf("JSON = %s, %v", data, err)
	}
	var back readmodel.Recent[int]
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Cap() != 3 || !slices.Equal(back.Items(), []int{2, 1}) {
		t.Fatalf("round trip = %v cap %d", back.Items(), back.Cap())
	}
	if back.Push(3).Push(4).Len() != 3 {
		t.Fatalf("decoded Recent lost its capacity")
	}
	// The zero Recent round-trips too.
	data, _ = json.Marshal(readmodel.Recent[int]{})
	if err := json.Unmarshal(data, &back); err != nil || back.Cap() != 0 {
		t.Fatalf("zero Recent round trip: %s, %v", data, err)
	}
	for _, bad := range []string{`{"cap":1,"items":[1,2]}`, `{"cap":-1,"items":[]}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil || !strings.Contains(err.Error(), "readmodel") {
			t.Errorf("Unmarshal(%s) = %v", bad, err)
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
		if got != tc.want || math.Signbit(got) != math.Signbit(tc.want) {
			t.Errorf("Round(%v, %d) = %v, want %v", tc.x, tc.decimals, got, tc.want)
		}
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
		if err := json.Unmarshal([]byte(bad), &a); err == nil {
			t.Errorf("Unmarshal(%s) accepted: count %d", bad, a.Count())
		}
	}
	var a readmodel.RunningAverage
	if err := json.Unmarshal([]byte(`{"count":9007199254740992,"sum":4}`), &a); err != nil {
		t.Fatalf("Unmarshal at the limit: %v", err)
	}
	for range 3 {
		a = a.Add(5)
		if a.Count() != limit || a.Sum() != 4 {
			t.Fatalf("Add on a full average: count %d, sum %v; want it unchanged", a.Count(), a.Sum())
		}
	}
	if b := a.Remove(4); b.Count() != limit-1 {
		t.Fatalf("Remove on a full average: count %d", b.Count())
	}
}
