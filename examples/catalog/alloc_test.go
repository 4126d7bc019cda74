package catalog_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/examples/catalog"
)

// TestDispatchAllocations guards issue 15's budget: a dispatch of
// UpdatePrice or SubmitReview with the views and trending projected inline
// makes at most 5 heap allocations on average. UpdatePrice: the command and
// the event boxed into interfaces, the new product view and (amortized) a
// new array for its price history when the old one is full; SubmitReview: the command, the event, the new product view and
// the new trending entry, plus (amortized) their recent-review arrays. It
// counts every allocation in the process exactly, not rounded down to an
// integer as testing.AllocsPerRun and allocs/op are.
func TestDispatchAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	ctx := context.Background()
	// 2,000 products, so that most reviews move a product outside the top
	// rated snapshot (readmodel.RankingTopCache entries), which is rebuilt,
	// one more allocation, when a change reaches it.
	const products = 2000
	_, app, gen := seeded(t, products, catalog.Config{})
	const n = 3000
	prices := make([]catalog.UpdatePrice, n)
	reviews := make([]catalog.SubmitReview, n)
	for i := range n {
		p := i * 7 % products
		prices[i] = catalog.UpdatePrice{ProductID: catalog.ProductID(p), SellerID: gen.OwnerOf(p), PriceCents: int64(1000 + i)}
		reviews[i] = catalog.SubmitReview{ReviewID: "alloc-" + strconv.Itoa(i), ProductID: catalog.ProductID(p), Author: "a", Rating: 1 + i%5, Text: "t"}
	}
	for name, dispatch := range map[string]func(i int) error{
		"UpdatePrice": func(i int) error {
			_, err := app.Dispatch(ctx, prices[i])
			return err
		},
		"SubmitReview": func(i int) error {
			_, err := app.Dispatch(ctx, reviews[i])
			return err
		},
	} {
		require.NoError(t, dispatch(0)) // warm up
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 1; i < n; i++ {
			if err := dispatch(i); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		per := float64(after.Mallocs-before.Mallocs) / (n - 1)
		t.Logf("%s: %.2f allocations per dispatch", name, per)
		require.LessOrEqual(t, per, 5.0, "%s allocations per dispatch", name)
	}
}
