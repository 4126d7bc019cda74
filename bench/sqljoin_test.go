package bench

import (
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/store"
)

// TestJoinMatchesView checks that the corrected product-page query returns,
// for every product of a 2,000-product catalog, what the cqrskit product
// view holds: product fields, seller name and rating, average rating and
// count, the last 5 reviews, shipping options, and the price 30 and 90 days
// ago.
func TestJoinMatchesView(t *testing.T) {
	ctx := context.Background()
	c := testCatalog(t)
	snap, err := LoadSnapshot(ctx, c.Store, c.SeedHead)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("sqlite", func(t *testing.T) {
		q, err := OpenSQLite(ctx, snap)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		comparePages(t, c, q.Page)
	})
	t.Run("postgres", func(t *testing.T) {
		url := os.Getenv("CQRSKIT_POSTGRES_URL")
		if url == "" {
			t.Skip("CQRSKIT_POSTGRES_URL not set")
		}
		q, err := OpenPostgres(ctx, url, snap)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		comparePages(t, c, q.Page)
	})
}

func comparePages(t *testing.T, c *Catalog, page func(context.Context, string, time.Time) (ProductPage, error)) {
	t.Helper()
	ctx := context.Background()
	var sawDrop, sawRename, sawMulti bool
	for _, id := range c.IDs {
		v, ok := c.App.Views.Product(id)
		if !ok {
			t.Fatalf("%s: no view", id)
		}
		p, err := page(ctx, id, c.RefNow)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		check := func(what string, got, want any) {
			t.Helper()
			if got != want {
				t.Errorf("%s %s: sql %v, view %v", id, what, got, want)
			}
		}
		check("title", p.Title, v.Title)
		check("description", p.Description, v.Description)
		check("price", p.PriceCents, v.PriceCents)
		check("stock", p.Stock, v.Stock)
		check("seller", p.SellerID, v.SellerID)
		check("seller name", p.SellerName, v.SellerName)
		check("seller rating", p.SellerRating, v.SellerRating)
		check("review count", p.ReviewCount, v.ReviewCount())
		if math.Abs(p.AvgRating-v.Ratings.Mean()) > 1e-9 {
			t.Errorf("%s avg rating: sql %v, view %v", id, p.AvgRating, v.Ratings.Mean())
		}
		if len(p.Recent) != v.Recent.Len() {
			t.Errorf("%s recent reviews: sql %d, view %d", id, len(p.Recent), v.Recent.Len())
		} else {
			for i, r := range p.Recent {
				w := v.Recent.At(i)
				got := PageReview{ID: w.ReviewID, Author: w.Author, Rating: w.Rating, Text: w.Text, At: w.At.UnixNano()}
				if r != got {
					t.Errorf("%s review %d: sql %+v, view %+v", id, i, r, got)
				}
			}
		}
		if !slices.Equal(p.Shipping, v.Shipping) {
			t.Errorf("%s shipping: sql %+v, view %+v", id, p.Shipping, v.Shipping)
		}
		p30, ok30 := v.PriceDaysAgo(c.RefNow, 30)
		p90, ok90 := v.PriceDaysAgo(c.RefNow, 90)
		check("price 30 days ago", [2]any{p.Price30, p.Has30}, [2]any{p30, ok30})
		check("price 90 days ago", [2]any{p.Price90, p.Has90}, [2]any{p90, ok90})
		sawDrop = sawDrop || (p.Has30 && p.Has90 && p.Price30 != p.Price90)
		sawRename = sawRename || v.SellerName != "Seller "+v.SellerID[2:]
		sawMulti = sawMulti || len(v.Shipping) > 1
		if t.Failed() {
			t.FailNow()
		}
	}
	// The data must exercise what the seed's query got wrong.
	if !sawDrop || !sawRename || !sawMulti {
		t.Fatalf("catalog too plain: price change %v, rename %v, several shipping options %v", sawDrop, sawRename, sawMulti)
	}
}

// TestSeedJoinFansOut documents why the seed's query was replaced: joining
// reviews, shipping options and price history at once multiplies the rows.
func TestSeedJoinFansOut(t *testing.T) {
	ctx := context.Background()
	c := testCatalog(t)
	snap, err := LoadSnapshot(ctx, c.Store, c.SeedHead)
	if err != nil {
		t.Fatal(err)
	}
	q, err := OpenSQLite(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, id := range c.IDs {
		v, _ := c.App.Views.Product(id)
		if len(v.Shipping) < 2 {
			continue
		}
		var pid string
		var avg float64
		var count int
		var methods string
		if err := q.DB.QueryRowContext(ctx, SeedJoinSQLite, id).Scan(&pid, &avg, &count, &methods); err != nil {
			t.Fatal(err)
		}
		if count == v.ReviewCount() {
			t.Fatalf("%s: seed query counted %d reviews, expected a fan-out", id, count)
		}
		if count%(v.ReviewCount()*len(v.Shipping)) != 0 {
			t.Fatalf("%s: seed query counted %d, want a multiple of %d reviews x %d options", id, count, v.ReviewCount(), len(v.Shipping))
		}
		t.Logf("%s: seed query COUNT(r.id) = %d for %d reviews, %d shipping options; methods %q", id, count, v.ReviewCount(), len(v.Shipping), methods)
		break
	}
	url := os.Getenv("CQRSKIT_POSTGRES_URL")
	if url == "" {
		return
	}
	pg, err := OpenPostgres(ctx, url, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	_, err = pg.Pool.Exec(ctx, SeedJoinPostgres, c.IDs[0])
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42803" { // grouping_error
		t.Fatalf("PostgreSQL ran the seed query: %v", err)
	}
}

// TestFloorMatchesViews checks that the floor's product view carries the
// same information as cqrskit's, and that the baseline scans answer the
// top-rated and in-stock queries like the maintained read models.
func TestFloorMatchesViews(t *testing.T) {
	c := testCatalog(t)
	for _, id := range c.IDs {
		v, _ := c.App.Views.Product(id)
		f, ok := c.Floor.View.Product(id)
		if !ok {
			t.Fatalf("%s: no floor view", id)
		}
		got := [...]any{f.Title, f.Description, f.PriceCents, f.Stock, f.InStock, f.SellerName, f.SellerRating,
			f.AverageRating(), f.RatingCount, f.PriceDropped, f.PreviousPriceCents, f.Version, f.UpdatedAt.UnixNano()}
		want := [...]any{v.Title, v.Description, v.PriceCents, v.Stock, v.InStock, v.SellerName, v.SellerRating,
			v.AverageRating(), v.Ratings.Count(), v.PriceDropped, v.PreviousPriceCents, v.Version, v.UpdatedAt.UnixNano()}
		if got != want {
			t.Fatalf("%s: floor %v, view %v", id, got, want)
		}
		if !slices.Equal(f.Recent.Items(), v.Recent.Items()) || !slices.Equal(f.Shipping, v.Shipping) || !slices.Equal(f.History, v.History) {
			t.Fatalf("%s: floor reviews/shipping/history differ:\n%+v\n%+v", id, f, v)
		}
	}
	want := c.App.Views.TopRated(10, nil)
	if got := c.Floor.View.TopRatedScan(10, nil); !slices.Equal(got, want) {
		t.Errorf("TopRatedScan = %v, want %v", got, want)
	}
	if got := c.Floor.View.TopRatedSort(10, nil); !slices.Equal(got, want) {
		t.Errorf("TopRatedSort = %v, want %v", got, want)
	}
	after := ""
	for page := 0; ; page++ {
		want := c.App.Views.InStock(after, 50, nil)
		got := c.Floor.View.InStockScan(after, 50, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("InStockScan(%q) = %v, want %v", after, got, want)
		}
		if len(want) < 50 {
			break
		}
		after = want[len(want)-1]
	}
	// The secondary read models the floor maintains on writes.
	if got, want := c.Floor.View.TopRated(catalog.TopRatedMinReviews*50, nil), c.App.Views.TopRated(catalog.TopRatedMinReviews*50, nil); !slices.Equal(got, want) {
		t.Errorf("floor TopRated = %v, want %v", got, want)
	}
	if got, want := c.Floor.View.inStock.Len(), c.App.Views.InStockCount(); got != want {
		t.Errorf("floor in-stock count = %d, want %d", got, want)
	}
	for after := ""; ; {
		want := c.App.Views.InStock(after, 50, nil)
		if got := c.Floor.View.InStock(after, 50, nil); !slices.Equal(got, want) {
			t.Fatalf("floor InStock(%q) = %v, want %v", after, got, want)
		}
		if len(want) < 50 {
			break
		}
		after = want[len(want)-1]
	}
	trending := 0
	for i, id := range c.IDs {
		if got, want := c.Floor.View.BySeller(c.Owners[i], nil), c.App.Views.BySeller(c.Owners[i], nil); !slices.Equal(got, want) {
			t.Fatalf("floor BySeller(%s) = %v, want %v", c.Owners[i], got, want)
		}
		for _, now := range []time.Time{c.RefNow, c.RefNow.Add(-100 * 24 * time.Hour)} {
			got, want := c.Floor.View.IsTrending(id, now), c.App.Trending.IsTrending(id, now)
			if got != want {
				t.Fatalf("floor IsTrending(%s, %v) = %v, want %v", id, now, got, want)
			}
			if want {
				trending++
			}
		}
	}
	if trending == 0 {
		t.Errorf("no product trends at any of the times checked: the comparison proves nothing")
	}
}

// TestFloorWritesSameRows checks that the floor's write model holds the
// rows the catalog's tables hold: every product row (including its
// price-history sequence) and every price_history row.
func TestFloorWritesSameRows(t *testing.T) {
	c := testCatalog(t)
	d := c.App.Domain
	f := c.Floor
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := c.Store.Update(context.Background(), func(tx store.Tx) error {
		rows := 0
		for _, id := range c.IDs {
			want, _, err := d.Products.Get(tx, id)
			if err != nil {
				return err
			}
			if got := f.products[id]; got != want {
				t.Fatalf("product row %s: floor %+v, catalog %+v", id, got, want)
			}
			for seq := 1; seq <= want.PriceSeq; seq++ {
				key := catalog.PriceKey{ProductID: id, Seq: seq}
				want, _, err := d.Prices.Get(tx, key)
				if err != nil {
					return err
				}
				if got, ok := f.prices[key]; !ok || got != want {
					t.Fatalf("price_history row %+v: floor %+v (present %v), catalog %+v", key, got, ok, want)
				}
				rows++
			}
		}
		if len(f.prices) != rows {
			t.Fatalf("floor has %d price_history rows, catalog %d", len(f.prices), rows)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSweepMatches checks the directly fed views of the size sweep.
func TestSweepMatches(t *testing.T) {
	sw, err := BuildSweep(context.Background(), 3000)
	if err != nil {
		t.Fatal(err)
	}
	if sw.Views.ProductCount() != 3000 || sw.Floor.Len() != 3000 {
		t.Fatalf("sweep has %d/%d products", sw.Views.ProductCount(), sw.Floor.Len())
	}
	want := sw.Views.TopRated(10, nil)
	if len(want) != 10 {
		t.Fatalf("TopRated(10) = %v", want)
	}
	if got := sw.Floor.TopRatedScan(10, nil); !slices.Equal(got, want) {
		t.Errorf("TopRatedScan = %v, want %v", got, want)
	}
}

// TestWatermillUpdatesView sends one command of each kind through the
// Watermill baseline and checks the floor view shows it.
func TestWatermillUpdatesView(t *testing.T) {
	f := NewFloor(time.Now)
	for _, cmd := range []any{
		catalog.RegisterSeller{SellerID: "s-0", Name: "Seller 0", Rating: 4},
		catalog.ListProduct{ProductID: "p-0", SellerID: "s-0", Title: "P", Description: "D", PriceCents: 100, Stock: 1},
	} {
		if err := f.Dispatch(cmd); err != nil {
			t.Fatal(err)
		}
	}
	w, err := NewWatermill(f)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	if err := w.Send(ctx, &catalog.UpdatePrice{ProductID: "p-0", SellerID: "s-0", PriceCents: 90}); err != nil {
		t.Fatal(err)
	}
	<-w.Applied
	if err := w.Send(ctx, &catalog.SubmitReview{ReviewID: "r-1", ProductID: "p-0", Author: "a", Rating: 5, Text: "t"}); err != nil {
		t.Fatal(err)
	}
	<-w.Applied
	v, _ := f.View.Product("p-0")
	if v.PriceCents != 90 || !v.PriceDropped || v.RatingCount != 1 || v.Recent.Len() != 1 {
		t.Fatalf("view after watermill commands: %+v", v)
	}
}
