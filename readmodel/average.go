package readmodel

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// RunningAverage is an incrementally maintained mean, such as a product's
// rating: a projection adds a review's rating when it is posted and
// removes it when the review is deleted or edited, without reading every
// review again.
//
// It is an immutable value: Add and Remove return a new RunningAverage and
// leave the receiver alone, so a view holding one can be shared with
// readers (see [Map]). The zero value is the empty average.
//
// The sum is kept with compensated (Neumaier) summation, so adding and
// removing many values leaves no visible float drift.
type RunningAverage struct {
	n   int64
	sum float64
	c   float64 // compensation: low-order bits lost from sum
}

// Add returns the average with x included. x should be finite.
func (a RunningAverage) Add(x float64) RunningAverage {
	a = a.plus(x)
	a.n++
	return a
}

// Remove returns the average with one x taken out; x should be a value
// that was added. Removing the last value returns the zero (empty)
// average exactly, and removing from an empty average returns it
// unchanged, so a projection that sees a removal twice does not drive the
// count negative.
func (a RunningAverage) Remove(x float64) RunningAverage {
	if a.n <= 1 {
		return RunningAverage{}
	}
	a = a.plus(-x)
	a.n--
	return a
}

// plus adds x to the compensated sum.
func (a RunningAverage) plus(x float64) RunningAverage {
	t := a.sum + x
	if math.Abs(a.sum) >= math.Abs(x) {
		a.c += (a.sum - t) + x
	} else {
		a.c += (x - t) + a.sum
	}
	a.sum = t
	return a
}

// Count returns the number of values in the average.
func (a RunningAverage) Count() int64 { return a.n }

// Sum returns the sum of the values in the average.
func (a RunningAverage) Sum() float64 { return a.sum + a.c }

// Mean returns the average, or 0 when it is empty.
func (a RunningAverage) Mean() float64 {
	if a.n == 0 {
		return 0
	}
	return a.Sum() / float64(a.n)
}

// Round returns the mean rounded to the given number of decimals, halves
// away from zero: 4.25 rounds to 4.3 and -4.25 to -4.3 with one decimal.
// A negative decimals rounds to tens, hundreds, and so on.
//
// The mean is first read as the nearest 15-significant-digit decimal, the
// precision a float64 always round-trips, so float error does not flip
// the rounding of a half: 4.35 (stored as 4.34999...) and a mean that came
// out as 4.3499999999999996 both round to 4.4.
func (a RunningAverage) Round(decimals int) float64 {
	return roundHalfAway(a.Mean(), decimals)
}

// roundHalfAway rounds x to d decimals, halves away from zero, after
// reading x as a 15-significant-digit decimal.
func roundHalfAway(x float64, d int) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	// strconv rounds correctly: |x| = mant * 10^(exp-14), 15 digits in mant.
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], math.Abs(x), 'e', 14, 64)
	var mant, exp int64
	i := 0
	for ; b[i] != 'e'; i++ {
		if b[i] != '.' {
			mant = mant*10 + int64(b[i]-'0')
		}
	}
	neg := b[i+1] == '-'
	for _, c := range b[i+2:] {
		exp = exp*10 + int64(c-'0')
	}
	if neg {
		exp = -exp
	}

	drop := 14 - exp - int64(d) // decimal digits of mant below the rounding position
	if drop <= 0 {
		return x // no digits beyond d decimals: nothing to round
	}
	var q int64
	if drop <= 15 { // mant < 10^15, so with more digits dropped q would be 0
		div := int64(math.Pow10(int(drop)))
		q = mant / div
		if 2*(mant%div) >= div {
			q++
		}
	}
	r := float64(q) // exact: q <= 10^15 < 2^53
	if d >= 0 {
		r /= math.Pow10(d)
	} else {
		r *= math.Pow10(-d)
	}
	if x < 0 && r != 0 { // no -0 when a small negative mean rounds to zero
		r = -r
	}
	return r
}

// averageJSON is the JSON form of a RunningAverage.
type averageJSON struct {
	Count int64   `json:"count"`
	Sum   float64 `json:"sum"`
}

// MarshalJSON encodes the average as {"count":n,"sum":s}, so that views
// holding one survive durable stores that encode values as JSON.
func (a RunningAverage) MarshalJSON() ([]byte, error) {
	return json.Marshal(averageJSON{Count: a.n, Sum: a.Sum()})
}

// UnmarshalJSON decodes the form written by MarshalJSON.
func (a *RunningAverage) UnmarshalJSON(data []byte) error {
	var v averageJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if v.Count < 0 || (v.Count == 0 && v.Sum != 0) {
		return fmt.Errorf("readmodel: invalid RunningAverage: count %d, sum %g", v.Count, v.Sum)
	}
	*a = RunningAverage{n: v.Count, sum: v.Sum}
	return nil
}
