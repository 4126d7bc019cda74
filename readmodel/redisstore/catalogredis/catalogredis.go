// Package catalogredis serves the example catalog's main read models from
// Redis: the product view, sellers, top-rated, in-stock pages and products
// by seller, projected by a redisstore.Projector (exactly once, rebuilt
// into a new generation without downtime). Any number of stateless
// processes answer queries from the same Redis, each query in one round
// trip; one process (or one lease holder) runs the projector.
//
// The fold is the one of catalog.Views, written against the Redis blocks;
// a property test checks that both give the same views after the same
// random commands.
//
// Key layout, under "<prefix>:catalog.views:g<N>:" (see redisstore):
//
//	s:products        hash: product ID -> catalog.ProductView (ProductCodec)
//	s:sellers         hash: seller ID -> catalog.SellerView (SellerCodec)
//	i:by-seller:<ID>  sorted set: the seller's product IDs
//	r:top-rated       sorted set: product ID by negated mean rating
//	z:in-stock        sorted set: IDs of products in stock
//	cp                hash: the projector's checkpoint
//
// # Stored format
//
// Product and seller views are stored in a compact binary form
// (ProductCodec, SellerCodec) that starts with a format byte; views that
// an earlier version stored as JSON are still read, and are rewritten in
// the binary form by the projector's next change to them. A value in a
// format this version does not know is refused with an
// *UnknownFormatError, a damaged one with a *CorruptError (both wrapped in
// a *store.InvalidError).
//
// # Concurrency
//
// Queries are safe for concurrent use with each other and with the
// projector, and never see an event half-applied.
//
// # Errors
//
// Queries return the driver's error (wrapped; it matches
// store.ErrUnavailable when Redis cannot be reached) and errors matching
// ctx.Err(); a product or seller that does not exist is reported with
// ok == false, not an error.
package catalogredis

import (
	"context"
	"errors"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
	"github.com/cqrskit/cqrs/store"
	"github.com/redis/go-redis/v9"
)

// Name is the projector's name, the one catalog.Views has.
const Name = "catalog.views"

// The price history rules of catalog.Views: a view answers "price N days
// ago" for up to 90 days and keeps at most 64 points.
const (
	historyWindow = 90 * 24 * time.Hour
	maxHistory    = 64
)

// Views is the catalog's read models in Redis and the projector that
// maintains them.
type Views struct {
	ns        *redisstore.Namespace
	products  *redisstore.Store[string, catalog.ProductView]
	sellers   *redisstore.Store[string, catalog.SellerView]
	bySeller  *redisstore.Index
	topRated  *redisstore.Ranking
	inStock   *redisstore.SortedSet
	projector *redisstore.Projector
	router    event.Router
}

// New returns the views under prefix. Add Projector() to a runner (with
// projection.WithVersion(catalog.ViewsVersion)); query from any process.
func New(rdb redis.UniversalClient, prefix string) (*Views, error) {
	ns, err := redisstore.NewNamespace(rdb, prefix, Name)
	if err != nil {
		return nil, err
	}
	v := &Views{
		ns:       ns,
		products: redisstore.NewStoreCodec[string](ns, "products", redisstore.Codec[catalog.ProductView](ProductCodec{})),
		sellers:  redisstore.NewStoreCodec[string](ns, "sellers", redisstore.Codec[catalog.SellerView](SellerCodec{})),
		bySeller: redisstore.NewIndex(ns, "by-seller"),
		topRated: redisstore.NewRanking(ns, "top-rated"),
		inStock:  redisstore.NewSortedSet(ns, "in-stock"),
	}
	r := &v.router
	event.On(r, v.sellerRegistered)
	event.On(r, v.sellerRenamed)
	event.On(r, v.sellerRated)
	event.On(r, v.productListed)
	event.On(r, v.priceChanged)
	event.On(r, v.stockChanged)
	event.On(r, v.stockReserved)
	event.On(r, v.restocked)
	event.On(r, v.detailsChanged)
	event.On(r, v.reviewSubmitted)
	event.On(r, v.shippingSet)
	v.projector = redisstore.NewProjector(ns, func(ctx context.Context, _ *redisstore.Tx, rec event.Record) error {
		return v.router.Handle(ctx, rec)
	}, redisstore.WithVersion(catalog.ViewsVersion))
	return v, nil
}

// Projector returns the projector that maintains the views.
func (v *Views) Projector() *redisstore.Projector { return v.projector }

// Namespace returns the views' namespace.
func (v *Views) Namespace() *redisstore.Namespace { return v.ns }

// Product returns the product view, in one round trip.
func (v *Views) Product(ctx context.Context, id string) (catalog.ProductView, bool, error) {
	return found(v.products.Get(ctx, id))
}

// Seller returns the seller view, in one round trip.
func (v *Views) Seller(ctx context.Context, id string) (catalog.SellerView, bool, error) {
	return found(v.sellers.Get(ctx, id))
}

func found[V any](x V, err error) (V, bool, error) {
	if errors.Is(err, store.ErrNotFound) {
		return x, false, nil
	}
	return x, err == nil, err
}

// TopRated appends the n best-rated products with at least
// catalog.TopRatedMinReviews reviews to dst, best first (ties by ID), in
// one round trip, O(log N + n).
func (v *Views) TopRated(ctx context.Context, n int, dst []catalog.Rated) ([]catalog.Rated, error) {
	return v.topRated.Top(ctx, n, dst)
}

// InStock appends up to limit IDs of in-stock products to dst, in ID
// order after the cursor after ("" starts at the beginning), in one round
// trip.
func (v *Views) InStock(ctx context.Context, after string, limit int, dst []string) ([]string, error) {
	if after == "" {
		return v.inStock.Page(ctx, limit, dst)
	}
	return v.inStock.PageAfter(ctx, after, limit, dst)
}

// BySeller appends the IDs of the seller's products to dst in ID order, in
// one round trip.
func (v *Views) BySeller(ctx context.Context, sellerID string, dst []string) ([]string, error) {
	return v.bySeller.Keys(ctx, sellerID, dst)
}

// ProductCount returns the number of product views.
func (v *Views) ProductCount(ctx context.Context) (int, error) { return v.products.Len(ctx) }

func (v *Views) sellerRegistered(ctx context.Context, _ event.Record, e catalog.SellerRegistered) error {
	return v.sellers.Put(ctx, e.SellerID, catalog.SellerView{ID: e.SellerID, Name: e.Name, Rating: e.Rating})
}

func (v *Views) sellerRenamed(ctx context.Context, _ event.Record, e catalog.SellerRenamed) error {
	return v.updateSeller(ctx, e.SellerID, func(s *catalog.SellerView) { s.Name = e.Name })
}

func (v *Views) sellerRated(ctx context.Context, _ event.Record, e catalog.SellerRated) error {
	return v.updateSeller(ctx, e.SellerID, func(s *catalog.SellerView) { s.Rating = e.Rating })
}

// updateSeller changes the seller and copies the change into each of its
// product views: one event, N view writes, all in the event's batch.
func (v *Views) updateSeller(ctx context.Context, id string, fn func(*catalog.SellerView)) error {
	s, _, err := v.Seller(ctx, id)
	if err != nil {
		return err
	}
	s.ID = id
	fn(&s)
	if err := v.sellers.Put(ctx, id, s); err != nil {
		return err
	}
	ids, err := v.bySeller.Keys(ctx, id, nil)
	if err != nil {
		return err
	}
	for _, pid := range ids {
		p, ok, err := v.Product(ctx, pid)
		if err != nil {
			return err
		}
		if ok {
			p.SellerName, p.SellerRating = s.Name, s.Rating
			if err := v.products.Put(ctx, pid, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (v *Views) productListed(ctx context.Context, rec event.Record, e catalog.ProductListed) error {
	s, _, err := v.Seller(ctx, e.SellerID)
	if err != nil {
		return err
	}
	p := catalog.ProductView{
		ID: e.ProductID, Title: e.Title, Description: e.Description,
		PriceCents: e.PriceCents, Stock: e.Stock, InStock: e.Stock > 0,
		Recent:   readmodel.NewRecent[catalog.ReviewSummary](catalog.RecentReviews),
		SellerID: e.SellerID, SellerName: s.Name, SellerRating: s.Rating,
		History: []catalog.PricePoint{{At: rec.Time, Cents: e.PriceCents}},
		Version: rec.Version, UpdatedAt: rec.Time,
	}
	if err := v.products.Put(ctx, e.ProductID, p); err != nil {
		return err
	}
	if err := v.bySeller.Add(ctx, e.SellerID, e.ProductID); err != nil {
		return err
	}
	if err := v.indexStock(ctx, p); err != nil {
		return err
	}
	return v.indexRating(ctx, p)
}

// change applies fn to the product view and stores it, then updates the
// secondary indexes whose order changed.
func (v *Views) change(ctx context.Context, rec event.Record, id string, fn func(*catalog.ProductView)) error {
	before, ok, err := v.Product(ctx, id)
	if err != nil || !ok {
		return err
	}
	after := before
	fn(&after)
	after.Version, after.UpdatedAt = rec.Version, rec.Time
	if err := v.products.Put(ctx, id, after); err != nil {
		return err
	}
	if before.InStock != after.InStock {
		if err := v.indexStock(ctx, after); err != nil {
			return err
		}
	}
	if before.Ratings != after.Ratings {
		return v.indexRating(ctx, after)
	}
	return nil
}

func (v *Views) indexStock(ctx context.Context, p catalog.ProductView) error {
	if p.InStock {
		return v.inStock.Add(ctx, p.ID)
	}
	return v.inStock.Remove(ctx, p.ID)
}

func (v *Views) indexRating(ctx context.Context, p catalog.ProductView) error {
	if p.ReviewCount() >= catalog.TopRatedMinReviews {
		return v.topRated.Set(ctx, p.ID, p.Ratings.Mean())
	}
	return nil
}

func (v *Views) priceChanged(ctx context.Context, rec event.Record, e catalog.PriceChanged) error {
	return v.change(ctx, rec, e.ProductID, func(p *catalog.ProductView) {
		p.PreviousPriceCents = p.PriceCents
		p.PriceDropped = e.NewCents < p.PriceCents
		p.PriceCents = e.NewCents
		p.History = withPrice(p.History, catalog.PricePoint{At: rec.Time, Cents: e.NewCents})
	})
}

// withPrice appends pt to the history h, first dropping the points no
// longer needed: those older than the newest one at or before 90 days
// before pt, and the oldest beyond maxHistory.
func withPrice(h []catalog.PricePoint, pt catalog.PricePoint) []catalog.PricePoint {
	cut := pt.At.Add(-historyWindow)
	from := 0
	for i := len(h) - 1; i >= 0; i-- {
		if !h[i].At.After(cut) {
			from = i
			break
		}
	}
	from = max(from, len(h)+1-maxHistory)
	out := make([]catalog.PricePoint, 0, len(h)-from+1)
	return append(append(out, h[from:]...), pt)
}

func setStock(stock int) func(*catalog.ProductView) {
	return func(p *catalog.ProductView) { p.Stock, p.InStock = stock, stock > 0 }
}

func (v *Views) stockChanged(ctx context.Context, rec event.Record, e catalog.StockChanged) error {
	return v.change(ctx, rec, e.ProductID, setStock(e.Stock))
}

func (v *Views) stockReserved(ctx context.Context, rec event.Record, e catalog.StockReserved) error {
	return v.change(ctx, rec, e.ProductID, setStock(e.Stock))
}

func (v *Views) restocked(ctx context.Context, rec event.Record, e catalog.Restocked) error {
	return v.change(ctx, rec, e.ProductID, setStock(e.Stock))
}

func (v *Views) detailsChanged(ctx context.Context, rec event.Record, e catalog.DetailsChanged) error {
	return v.change(ctx, rec, e.ProductID, func(p *catalog.ProductView) {
		p.Title, p.Description = e.Title, e.Description
	})
}

func (v *Views) reviewSubmitted(ctx context.Context, rec event.Record, e catalog.ReviewSubmitted) error {
	return v.change(ctx, rec, e.ProductID, func(p *catalog.ProductView) {
		p.Ratings = p.Ratings.Add(float64(e.Rating))
		p.Recent = p.Recent.Push(catalog.ReviewSummary{ReviewID: e.ReviewID, Author: e.Author, Rating: e.Rating, Text: e.Text, At: rec.Time})
	})
}

func (v *Views) shippingSet(ctx context.Context, rec event.Record, e catalog.ShippingSet) error {
	return v.change(ctx, rec, e.ProductID, func(p *catalog.ProductView) { p.Shipping = e.Options })
}
