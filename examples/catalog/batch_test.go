package catalog_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/projection"
)

// Queries run while a new runner catches the views up in batches, and
// while commands keep coming: for the race detector, and for what a
// reader may rely on meanwhile (a product view, once there, stays there
// and its version never goes back; the top-rated list is sorted).
func TestBatchCatchUpWithConcurrentReaders(t *testing.T) {
	st, app, gen := seeded(t, 300, catalog.Config{})
	ctx := context.Background()
	views := catalog.NewViews()
	r := projection.NewRunner(st, projection.WithBatchSize(64))
	require.NoError(t, r.Add(views, projection.AsAsync()))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			seen := map[string]uint64{}
			top := make([]catalog.Rated, 0, 10)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := catalog.ProductID((i*7 + w) % 300)
				p, ok := views.Product(id)
				if v, was := seen[id]; was {
					if !assert.True(t, ok, "product %s disappeared", id) || !assert.GreaterOrEqual(t, p.Version, v, "product %s went back", id) {
						return
					}
				}
				if ok {
					seen[id] = p.Version
				}
				top = views.TopRated(10, top[:0])
				for j := 1; j < len(top); j++ {
					if !assert.GreaterOrEqual(t, top[j-1].Score, top[j].Score, "top rated out of order") {
						return
					}
				}
				_ = views.InStock("", 20, nil)
				_ = views.BySeller(catalog.SellerID(w), nil)
			}
		})
	}
	require.NoError(t, r.Start(ctx))
	defer r.Close()
	for range 300 {
		_, _ = app.Dispatch(ctx, gen.Next())
	}
	head, err := st.Head(ctx)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, r.WaitFor(wctx, "", head))
	close(stop)
	wg.Wait()
	require.Equal(t, app.Views.ProductCount(), views.ProductCount())
	app.Views.Each(func(want catalog.ProductView) bool {
		got, _ := views.Product(want.ID)
		return assert.Equal(t, want, got, "product %s", want.ID)
	})
	require.Equal(t, app.Views.TopRated(50, nil), views.TopRated(50, nil))
	require.Equal(t, app.Views.InStock("", 1000, nil), views.InStock("", 1000, nil))
}

// Batches in which a product's events come together, alternate with
// another product's, or follow its listing (the stage looks up the product
// it staged last before its map) project the same views as the inline,
// one-event-at-a-time projection, for several batch sizes.
func TestBatchesOfInterleavedProducts(t *testing.T) {
	const products = 40
	st, app, gen := seeded(t, products, catalog.Config{})
	ctx := context.Background()
	dispatch := func(cmd any) {
		_, _ = app.Dispatch(ctx, cmd) // some are rejected by design
	}
	for i := range 400 {
		a, b := i%7, (i*3+1)%products
		switch i % 4 {
		case 0: // a run of one product's events
			dispatch(gen.Review(a))
			dispatch(catalog.UpdatePrice{ProductID: catalog.ProductID(a), SellerID: gen.OwnerOf(a), PriceCents: int64(100 + i)})
			dispatch(catalog.UpdateStock{ProductID: catalog.ProductID(a), SellerID: gen.OwnerOf(a), Stock: i % 3})
		case 1: // two products alternating
			dispatch(gen.Review(a))
			dispatch(gen.Review(b))
			dispatch(gen.Review(a))
			dispatch(catalog.UpdateStock{ProductID: catalog.ProductID(b), SellerID: gen.OwnerOf(b), Stock: i % 2})
		default:
			dispatch(gen.Next())
		}
	}
	head, err := st.Head(ctx)
	require.NoError(t, err)
	for _, size := range []int{2, 3, 5, 64, 1000} {
		views := catalog.NewViews()
		r := projection.NewRunner(st, projection.WithBatchSize(size))
		require.NoError(t, r.Add(views, projection.AsAsync()))
		require.NoError(t, r.Start(ctx))
		require.NoError(t, r.WaitFor(ctx, "", head))
		r.Close()
		require.Equal(t, app.Views.ProductCount(), views.ProductCount(), "batch size %d", size)
		app.Views.Each(func(want catalog.ProductView) bool {
			got, _ := views.Product(want.ID)
			return assert.Equal(t, want, got, "batch size %d: product %s", size, want.ID)
		})
		require.Equal(t, app.Views.TopRated(products, nil), views.TopRated(products, nil), "batch size %d", size)
		require.Equal(t, app.Views.InStock("", products, nil), views.InStock("", products, nil), "batch size %d", size)
	}
}
