package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkDispatch/UpdatePrice/impl=cqrskit-2   100  3000 ns/op  9 cmds/s  100 B/op  7 allocs/op
BenchmarkDispatch/UpdatePrice/impl=cqrskit-2   100  1000 ns/op  9 cmds/s  100 B/op  7 allocs/op
BenchmarkDispatch/UpdatePrice/impl=cqrskit-2   100  2000 ns/op  9 cmds/s  100 B/op  7 allocs/op
BenchmarkDispatch/UpdatePrice/impl=floor-2     100  1000 ns/op  9 cmds/s  0 B/op  0 allocs/op
BenchmarkDispatch/UpdatePrice/impl=watermill-2 100  50000 ns/op  9 cmds/s  0 B/op  0 allocs/op
BenchmarkQuery/TopRated10/products=10K/impl=cqrskit-2  100  10 ns/op
BenchmarkQuery/TopRated10/products=1M/impl=cqrskit-2   100  30 ns/op
BenchmarkProjection/Rebuild1M/impl=cqrskit-2  1  2000000000 ns/op  500000 events/s
`

func TestBuild(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := res.median("Dispatch/UpdatePrice/impl=cqrskit", "ns/op"); m != 2000 {
		t.Fatalf("median = %v, want 2000", m)
	}
	got := map[string]row{}
	for _, r := range build(res).rows {
		got[r.check] = r
	}
	for check, want := range map[string][2]string{
		"Dispatch/UpdatePrice: cqrskit ÷ floor, ns/op":           {"2.00×", "met"},
		"Dispatch/UpdatePrice: cqrskit allocs/op":                {"7.00 allocs", "missed"},
		"Dispatch/UpdatePrice: watermill ÷ cqrskit, ns/op":       {"25.0×", "missed"},
		"Query/TopRated10: 1M ÷ 10K products (size-independent)": {"3.00×", "missed"},
		"Projection/Rebuild1M":                                   {"500,000 events/s", "missed"},
		"Dispatch/SubmitReview: cqrskit ÷ floor, ns/op":          {"n/a", "not run"},
	} {
		r, ok := got[check]
		if !ok {
			t.Errorf("no row %q", check)
			continue
		}
		if r.value != want[0] || r.status != want[1] {
			t.Errorf("%s = %s (%s), want %s (%s)", check, r.value, r.status, want[0], want[1])
		}
	}
}
