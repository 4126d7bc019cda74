package catalog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/projection"
)

// A rebuild (bulk replay into a shadow, then flush) gives the same views as
// the inline projection that saw every event as it happened: product
// views, top rated, in stock and products by seller. The log lists
// products before and after seller renames and ratings, which reach every
// product of the seller, including products the replay listed moments
// before.
func TestRebuildMatchesIncremental(t *testing.T) {
	const products = 300
	st, app, gen := seeded(t, products, catalog.Config{})
	ctx := context.Background()
	dispatch := func(cmd any) {
		_, _ = app.Dispatch(ctx, cmd) // some are rejected by design
	}
	sellers := max(products/100, 1)
	for i := range 2000 {
		switch {
		case i%50 == 0: // a new product of a seller, then a rename reaching it
			p := products + i/50
			dispatch(gen.ListProduct(p))
			dispatch(gen.Review(p))
			s := p % sellers
			dispatch(catalog.RenameSeller{SellerID: catalog.SellerID(s), Name: fmt.Sprintf("Seller %d at %d", s, i)})
			dispatch(catalog.RateSeller{SellerID: catalog.SellerID(s), Rating: float64(i%5) + 0.5})
		default:
			dispatch(gen.Next())
		}
	}
	views := catalog.NewViews()
	r := projection.NewRunner(st)
	require.NoError(t, r.Add(views))
	require.NoError(t, r.Start(ctx))
	defer r.Close()
	requireSameViews(t, app.Views, views, sellers, "caught up")
	require.NoError(t, r.Rebuild(ctx, views.Name()))
	requireSameViews(t, app.Views, views, sellers, "rebuilt")
	// The rebuilt views keep projecting.
	for range 300 {
		dispatch(gen.Next())
	}
	head, err := st.Head(ctx)
	require.NoError(t, err)
	require.NoError(t, r.WaitFor(ctx, "", head))
	requireSameViews(t, app.Views, views, sellers, "after rebuild")
}

func requireSameViews(t *testing.T, want, got *catalog.Views, sellers int, when string) {
	t.Helper()
	require.Equal(t, want.ProductCount(), got.ProductCount(), "%s: product count", when)
	want.Each(func(w catalog.ProductView) bool {
		g, _ := got.Product(w.ID)
		return assert.Equal(t, w, g, "%s: product %s", when, w.ID)
	})
	n := want.ProductCount() + 1
	require.Equal(t, want.TopRated(n, nil), got.TopRated(n, nil), "%s: top rated", when)
	require.Equal(t, want.InStock("", n, nil), got.InStock("", n, nil), "%s: in stock", when)
	require.Equal(t, want.InStockCount(), got.InStockCount(), "%s: in stock count", when)
	for s := range sellers {
		id := catalog.SellerID(s)
		require.Equal(t, want.BySeller(id, nil), got.BySeller(id, nil), "%s: by seller %s", when, id)
		ws, _ := want.Seller(id)
		gs, _ := got.Seller(id)
		require.Equal(t, ws, gs, "%s: seller %s", when, id)
	}
}
