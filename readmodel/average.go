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
//
// An average holds at most 1<<53 values, the largest count a float64
// (and so the mean's divisor) represents exactly: Add on a full average
// returns it unchanged rather than let the count overflow, and
// UnmarshalJSON rejects a larger count.
type RunningAverage struct {
	n   int64
	sum float64
	c   float64 // compensation: low-order bits lost from sum
}

// Add returns the average with x included. x should be finite. On a full
// average (1<<53 values) Add returns the receiver unchanged.
func (a RunningAverage) Add(x float64) RunningAverage {
	if a.n >= maxAverageCount {
		return a
	}
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

// maxAverageCount is the most values a RunningAverage holds: 2^53, the
// largest count float64 represents exactly and far beyond any real one.
const maxAverageCount = 1 << 53

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
//
// Any decimals is allowed. Rounding to more decimals than the mean has
// returns it unchanged; rounding to a power of ten far above it returns 0
// (never -0, never NaN). A result beyond the float64 range, such as
// 1.5e308 rounded to -308 decimals, is ±Inf, as float arithmetic
// overflows.
func (a RunningAverage) Round(decimals int) float64 {
	return roundHalfAway(a.Mean(), decimals)
}

// decimalsRange bounds the decimals roundHalfAway works with: float64
// magnitudes lie between 10^-324 and 10^309.
const decimalsRange = 400

// roundHalfAway rounds x to d decimals, halves away from zero, after
// reading x as a 15-significant-digit decimal.
func roundHalfAway(x float64, d int) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	// Beyond ±decimalsRange every float64 rounds to itself (no digit below
	// 10^-decimalsRange) or to 0 (|x| < 10^(decimalsRange-1)); clamping
	// keeps drop and the powers of ten below in range.
	d = min(max(d, -decimalsRange), decimalsRange)
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
	if q == 0 {
		return 0 // no -0, and no 0 × Inf when 10^-d overflows
	}
	r := float64(q) // exact: q <= 10^15 < 2^53
	if d >= 0 {
		if d > 308 { // 10^d overflows; q*10^-d is subnormal
			r /= 1e308
			d -= 308
		}
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

// UnmarshalJSON decodes the form written by MarshalJSON. It returns an
// error, and leaves the receiver unchanged, for a count that is negative
// or above 1<<53, a zero count with a non-zero sum, or a sum that is not
// finite.
func (a *RunningAverage) UnmarshalJSON(data []byte) error {
	var v averageJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	avg, err := AverageOf(v.Count, v.Sum)
	if err != nil {
		return err
	}
	*a = avg
	return nil
}

// AverageOf returns the average of count values summing to sum: the
// average whose Count and Sum they are, for codecs that store a
// RunningAverage as those two numbers (as MarshalJSON does). It returns an
// error for a count that is negative or above 1<<53, a zero count with a
// non-zero sum, or a sum that is not finite.
func AverageOf(count int64, sum float64) (RunningAverage, error) {
	if count < 0 || count > maxAverageCount || (count == 0 && sum != 0) ||
		math.IsNaN(sum) || math.IsInf(sum, 0) {
		return RunningAverage{}, fmt.Errorf("readmodel: invalid RunningAverage: count %d, sum %g", count, sum)
	}
	return RunningAverage{n: count, sum: sum}, nil
}
