package readmodel_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/cqrskit/cqrs/readmodel"
)

// FuzzRound checks RunningAverage.Round on a one-value average for any
// finite value and any number of decimals: never NaN, never -0, the sign
// of the mean, within half a unit of the last decimal (plus the 15-digit
// reading), and stable when rounded again. CI runs it briefly; run it
// longer with
//
//	go test -run '^$' -fuzz '^FuzzRound$' -fuzztime 1m ./readmodel
func FuzzRound(f *testing.F) {
	for _, seed := range []struct {
		x float64
		d int
	}{
		{4.25, 1}, {4.35, 1}, {-4.25, 1}, {2.675, 2}, {1234.5, -1}, {0.5, 0},
		{0.5, -364}, // regression: NaN from 0 × Inf
		{1.5e308, -308}, {5e-324, 324}, {1e-300, 310}, {4.5, math.MinInt}, {4.5, math.MaxInt},
	} {
		f.Add(seed.x, seed.d)
	}
	f.Fuzz(func(t *testing.T, x float64, d int) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Skip("Add takes finite values")
		}
		a := readmodel.RunningAverage{}.Add(x)
		mean := a.Mean()
		r := a.Round(d)
		switch {
		case math.IsNaN(r):
			t.Fatalf("Round(%v, %d) = NaN", mean, d)
		case r == 0 && math.Signbit(r):
			t.Fatalf("Round(%v, %d) = -0", mean, d)
		case r != 0 && math.Signbit(r) != math.Signbit(mean):
			t.Fatalf("Round(%v, %d) = %v: sign flipped", mean, d, r)
		case math.IsInf(r, 0):
			if math.Abs(mean) < 1e308 {
				t.Fatalf("Round(%v, %d) = %v: overflow without a huge mean", mean, d, r)
			}
			return
		}
		// Half a unit of the last kept decimal, plus the error of reading the
		// mean as 15 significant digits and of scaling by a power of ten.
		half := 0.5 * math.Pow10(-max(min(d, 400), -400))
		if tol := half + math.Abs(mean)*1e-14 + math.Abs(r)*1e-15 + 5e-324; math.Abs(r-mean) > tol {
			t.Fatalf("Round(%v, %d) = %v: off by %v, more than %v", mean, d, r, math.Abs(r-mean), tol)
		}
		if again := (readmodel.RunningAverage{}).Add(r).Round(d); again != r {
			t.Fatalf("Round(%v, %d) = %v, but rounding that again gives %v", mean, d, r, again)
		}
	})
}

// FuzzRunningAverage decodes a RunningAverage from JSON and applies a
// sequence of Adds and Removes (each op byte: high bit set for Remove, the
// low seven bits a rating in tenths), checking the JSON round trip and the
// count invariants throughout. CI runs it briefly; run it longer with
//
//	go test -run '^$' -fuzz '^FuzzRunningAverage$' -fuzztime 1m ./readmodel
func FuzzRunningAverage(f *testing.F) {
	f.Add(`{"count":0,"sum":0}`, []byte{40, 50, 30, 0x80 | 30})
	f.Add(`{"count":2,"sum":9}`, []byte{0x80 | 40, 0x80 | 50, 0x80 | 50})
	f.Add(`{"count":9223372036854775807,"sum":1}`, []byte{1, 2, 3}) // regression: count overflowed
	f.Add(`{"count":9007199254740992,"sum":4}`, []byte{50, 0x80 | 40})
	f.Add(`{"count":-1,"sum":0}`, []byte{})
	f.Add(`{"count":0,"sum":3}`, []byte{10})
	f.Add(`{"count":1,"sum":1e308}`, []byte{127, 127})
	f.Add(`null`, []byte{})
	f.Fuzz(func(t *testing.T, data string, ops []byte) {
		var a readmodel.RunningAverage
		if err := json.Unmarshal([]byte(data), &a); err != nil {
			if a != (readmodel.RunningAverage{}) {
				t.Fatalf("Unmarshal(%s) failed (%v) but changed the value to %+v", data, err, a)
			}
			return
		}
		check := func(a readmodel.RunningAverage, what string) {
			t.Helper()
			if n := a.Count(); n < 0 || n > 1<<53 {
				t.Fatalf("%s: count %d out of range", what, n)
			}
			if a.Count() == 0 && a != (readmodel.RunningAverage{}) {
				t.Fatalf("%s: empty average not the zero value: %+v", what, a)
			}
			if s := a.Sum(); math.IsNaN(s) || math.IsInf(s, 0) {
				t.Fatalf("%s: sum %v", what, s)
			}
			if math.IsNaN(a.Round(1)) {
				t.Fatalf("%s: Round(1) of mean %v is NaN", what, a.Mean())
			}
			out, err := json.Marshal(a)
			if err != nil {
				t.Fatalf("%s: Marshal: %v", what, err)
			}
			var back readmodel.RunningAverage
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatalf("%s: Unmarshal(%s) of Marshal's output: %v", what, out, err)
			}
			if back.Count() != a.Count() || back.Sum() != a.Sum() {
				t.Fatalf("%s: round trip %s gave count %d sum %v, want %d %v",
					what, out, back.Count(), back.Sum(), a.Count(), a.Sum())
			}
		}
		check(a, "decoded")
		for _, op := range ops {
			x := float64(op&0x7f) / 10
			before := a.Count()
			if op&0x80 != 0 {
				a = a.Remove(x)
				if want := max(before-1, 0); a.Count() != want {
					t.Fatalf("Remove(%v) on count %d left count %d", x, before, a.Count())
				}
				check(a, "after Remove")
				continue
			}
			a = a.Add(x)
			if want := min(before+1, 1<<53); a.Count() != want {
				t.Fatalf("Add(%v) on count %d left count %d", x, before, a.Count())
			}
			check(a, "after Add")
		}
	})
}
