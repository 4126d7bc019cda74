package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/store"
)

func seeded(tb testing.TB, products int, cfg catalog.Config) (*store.Memory, *catalog.App, *catalog.Gen) {
	tb.Helper()
	st := store.NewMemory()
	app, err := catalog.Open(context.Background(), st, st, cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { app.Close(); st.Close() })
	gen := catalog.NewGen(1, max(products/100, 1), products)
	for _, c := range gen.Seed(5) {
		_, err := app.Dispatch(context.Background(), c)
		require.NoError(tb, err)
	}
	return st, app, gen
}

func TestTrendingNeedsNoWriteSideChange(t *testing.T) {
	clk := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := store.NewMemory(store.WithClock(func() time.Time { return clk }))
	defer st.Close()
	app, err := catalog.Open(context.Background(), st, st, catalog.Config{})
	require.NoError(t, err)
	defer app.Close()
	gen := catalog.NewGen(1, 1, 2)
	for _, c := range gen.Seed(0) {
		_, err := app.Dispatch(context.Background(), c)
		require.NoError(t, err)
	}
	for i := range 3 {
		clk = clk.Add(time.Hour)
		_, err := app.Dispatch(context.Background(), gen.Review(0))
		require.NoError(t, err)
		if i < 2 {
			assert.False(t, app.Trending.IsTrending("p-0", clk))
		}
	}
	assert.True(t, app.Trending.IsTrending("p-0", clk))
	assert.False(t, app.Trending.IsTrending("p-0", clk.Add(8*24*time.Hour)), "the badge expires with the window")
	assert.False(t, app.Trending.IsTrending("p-1", clk))
}

func TestPriceDroppedAndHistoryWindow(t *testing.T) {
	clk := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := store.NewMemory(store.WithClock(func() time.Time { return clk }))
	defer st.Close()
	app, err := catalog.Open(context.Background(), st, st, catalog.Config{})
	require.NoError(t, err)
	defer app.Close()
	ctx := context.Background()
	_, err = app.Dispatch(ctx, catalog.RegisterSeller{SellerID: "s", Name: "S"})
	require.NoError(t, err)
	_, err = app.Dispatch(ctx, catalog.ListProduct{ProductID: "p", SellerID: "s", Title: "T", PriceCents: 1000})
	require.NoError(t, err)
	// A price change every day for a year: the view keeps a bounded history.
	for d := 1; d <= 365; d++ {
		clk = clk.Add(24 * time.Hour)
		_, err := app.Dispatch(ctx, catalog.UpdatePrice{ProductID: "p", SellerID: "s", PriceCents: int64(1000 + d)})
		require.NoError(t, err)
	}
	v, _ := app.Views.Product("p")
	assert.LessOrEqual(t, len(v.History), 64)
	assert.True(t, v.PriceDropped == false && v.PreviousPriceCents == 1364)
	p, ok := v.PriceDaysAgo(clk, 30)
	assert.True(t, ok)
	assert.EqualValues(t, 1335, p)
	_, err = app.Dispatch(ctx, catalog.UpdatePrice{ProductID: "p", SellerID: "s", PriceCents: 900})
	require.NoError(t, err)
	v, _ = app.Views.Product("p")
	assert.True(t, v.PriceDropped)
	assert.EqualValues(t, 1365, v.PreviousPriceCents)
}

func TestValidationReportsEveryField(t *testing.T) {
	err := catalog.SetShipping{Options: []catalog.ShippingOption{{Method: "a"}, {Method: "a", Days: -1}}}.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ProductID")
	assert.Contains(t, err.Error(), "listed twice")
	assert.Contains(t, err.Error(), "Options[1].Days: must be between 0 and 365")
	assert.NoError(t, catalog.RegisterSeller{SellerID: "s", Name: "n", Rating: 5}.Validate())
	assert.Error(t, catalog.RateSeller{SellerID: "s", Rating: 5.1}.Validate())
}

func BenchmarkDispatchUpdatePrice(b *testing.B) {
	_, app, gen := seeded(b, 10_000, catalog.Config{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := i % gen.Products
		_, err := app.Dispatch(ctx, catalog.UpdatePrice{ProductID: catalog.ProductID(p), SellerID: gen.OwnerOf(p), PriceCents: int64(100 + i%2)})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetProduct(b *testing.B) {
	_, app, _ := seeded(b, 10_000, catalog.Config{})
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = catalog.ProductID(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, ok := app.Views.Product(ids[i%len(ids)]); !ok {
			b.Fatal("missing")
		}
	}
}

func BenchmarkDispatchSubmitReview(b *testing.B) {
	_, app, gen := seeded(b, 10_000, catalog.Config{})
	ctx := context.Background()
	cmds := make([]catalog.SubmitReview, 100_000)
	for i := range cmds {
		cmds[i] = gen.Review(i % gen.Products)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := app.Dispatch(ctx, cmds[i%len(cmds)]); err != nil && i < len(cmds) {
			b.Fatal(err)
		}
	}
}
