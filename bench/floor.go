package bench

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/readmodel"
)

// The floor is the catalog written by hand in plain Go, the way a competent
// engineer would without a framework, doing the same domain work as
// examples/catalog (Domain plus the inline Views and Trending projectors),
// no more and no less:
//
//   - the same stateless validation (the commands' own Validate methods) and
//     the same stateful checks against a normalized write model kept in maps
//     under one mutex (the seller exists, the product exists, the seller owns
//     it, no duplicate IDs, no-op when a price, stock or name is unchanged);
//   - the same rows: sellers, products (with their price-history sequence),
//     reviews, shipping options, and one price_history row per price, keyed
//     by (product, sequence) as in catalog.Domain;
//   - events carrying the same fields, handed to the view by a direct call;
//   - a product view with the same information as catalog.ProductView,
//     whose price history is a new slice on every change (the catalog copies
//     it because readers may hold the old one; so does the floor) and whose
//     recent reviews are a readmodel.Recent, as the catalog's are;
//   - the same secondary read models, updated under the same conditions:
//     products by seller, in stock, top rated (built from the same readmodel
//     data structures, so their cost is identical by construction) and the
//     trending window of catalog.Trending (a readmodel.Recent per product).
//
// What it leaves out, by design: an event log, positions, row versions and
// optimistic concurrency, middleware, the retry-on-conflict loop, projection
// routing and checkpoints, and everything else cqrskit does for durability
// and operability. Its product views are immutable snapshots, a new one
// for every change, as cqrskit's are (readers keep what they loaded while
// the next version is built), but they live in a plain map under a
// sync.RWMutex instead of cqrskit's lock-free map. It is the physical floor
// the ratios are taken against, not a competitor.
//
// (Until issue 15 the floor changed its views in place, under the lock; a
// snapshot per change is the work cqrskit's views do for lock-free reads,
// and issue 15 sets the targets against a floor that does it too.)

// Errors returned by the floor.
var (
	errFloorNotFound  = errors.New("floor: not found")
	errFloorForbidden = errors.New("floor: forbidden")
	errFloorExists    = errors.New("floor: already exists")
)

// Floor is the hand-written catalog: write model plus product view.
type Floor struct {
	now func() time.Time

	mu       sync.Mutex // guards the write model
	sellers  map[string]catalog.Seller
	products map[string]catalog.Product
	reviews  map[string]catalog.Review
	shipping map[string][]catalog.ShippingOption
	prices   map[catalog.PriceKey]catalog.PriceRow // price_history

	View *FloorView
}

// NewFloor returns an empty floor catalog whose rows are stamped by now.
func NewFloor(now func() time.Time) *Floor {
	return &Floor{
		now:      now,
		sellers:  make(map[string]catalog.Seller),
		products: make(map[string]catalog.Product),
		reviews:  make(map[string]catalog.Review),
		shipping: make(map[string][]catalog.ShippingOption),
		prices:   make(map[catalog.PriceKey]catalog.PriceRow),
		View:     NewFloorView(),
	}
}

// Floor events: what the write side hands the view. Watermill's baseline
// publishes the same structs through its event bus.

// FloorSellerRegistered is a seller that joined.
type FloorSellerRegistered struct {
	SellerID, Name string
	Rating         float64
}

// FloorSellerChanged is a seller renamed or re-rated.
type FloorSellerChanged struct {
	SellerID, Name string
	Rating         float64
}

// FloorProductListed is a product put on sale.
type FloorProductListed struct {
	ProductID, SellerID, Title, Description string
	PriceCents                              int64
	Stock                                   int
	At                                      time.Time
}

// FloorPriceChanged is a price change.
type FloorPriceChanged struct {
	ProductID          string
	OldCents, NewCents int64
	At                 time.Time
}

// FloorStockChanged is a stock change.
type FloorStockChanged struct {
	ProductID string
	Stock     int
	At        time.Time
}

// FloorDetailsChanged is a title/description change.
type FloorDetailsChanged struct {
	ProductID, Title, Description string
	At                            time.Time
}

// FloorReviewSubmitted is a new review.
type FloorReviewSubmitted struct {
	ReviewID, ProductID, Author string
	Rating                      int
	Text                        string
	At                          time.Time
}

// FloorShippingSet replaces a product's shipping options.
type FloorShippingSet struct {
	ProductID string
	Options   []catalog.ShippingOption
	At        time.Time
}

// Dispatch applies any catalog command (used for seeding; benchmarks call
// the typed methods).
func (f *Floor) Dispatch(cmd any) error {
	switch c := cmd.(type) {
	case catalog.RegisterSeller:
		return f.RegisterSeller(c)
	case catalog.RenameSeller:
		return f.RenameSeller(c)
	case catalog.RateSeller:
		return f.RateSeller(c)
	case catalog.ListProduct:
		return f.ListProduct(c)
	case catalog.UpdatePrice:
		return f.UpdatePrice(c)
	case catalog.UpdateStock:
		return f.UpdateStock(c)
	case catalog.UpdateDetails:
		return f.UpdateDetails(c)
	case catalog.SubmitReview:
		return f.SubmitReview(c)
	case catalog.SetShipping:
		return f.SetShipping(c)
	}
	return errors.New("floor: unknown command")
}

// RegisterSeller handles catalog.RegisterSeller.
func (f *Floor) RegisterSeller(c catalog.RegisterSeller) error {
	if err := c.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.sellers[c.SellerID]; dup {
		return errFloorExists
	}
	f.sellers[c.SellerID] = catalog.Seller{ID: c.SellerID, Name: c.Name, Rating: c.Rating}
	f.View.SellerRegistered(FloorSellerRegistered{SellerID: c.SellerID, Name: c.Name, Rating: c.Rating})
	return nil
}

// RenameSeller handles catalog.RenameSeller.
func (f *Floor) RenameSeller(c catalog.RenameSeller) error {
	if err := c.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sellers[c.SellerID]
	if !ok {
		return errFloorNotFound
	}
	if s.Name == c.Name {
		return nil
	}
	s.Name = c.Name
	f.sellers[c.SellerID] = s
	f.View.SellerChanged(FloorSellerChanged{SellerID: s.ID, Name: s.Name, Rating: s.Rating})
	return nil
}

// RateSeller handles catalog.RateSeller.
func (f *Floor) RateSeller(c catalog.RateSeller) error {
	if err := c.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sellers[c.SellerID]
	if !ok {
		return errFloorNotFound
	}
	s.Rating = c.Rating
	f.sellers[c.SellerID] = s
	f.View.SellerChanged(FloorSellerChanged{SellerID: s.ID, Name: s.Name, Rating: s.Rating})
	return nil
}

// ListProduct handles catalog.ListProduct.
func (f *Floor) ListProduct(c catalog.ListProduct) error {
	if err := c.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sellers[c.SellerID]; !ok {
		return errFloorNotFound
	}
	if _, dup := f.products[c.ProductID]; dup {
		return errFloorExists
	}
	if err := f.insertPrice(catalog.PriceKey{ProductID: c.ProductID, Seq: 1}, c.PriceCents); err != nil {
		return err
	}
	f.products[c.ProductID] = catalog.Product{ID: c.ProductID, SellerID: c.SellerID, Title: c.Title, Description: c.Description, PriceCents: c.PriceCents, Stock: c.Stock, PriceSeq: 1}
	at := f.now()
	f.View.ProductListed(FloorProductListed{
		ProductID: c.ProductID, SellerID: c.SellerID, Title: c.Title, Description: c.Description,
		PriceCents: c.PriceCents, Stock: c.Stock, At: at,
	})
	return nil
}

// insertPrice inserts a price_history row, refusing a duplicate key as the
// catalog's Table.Insert does. f.mu is held.
func (f *Floor) insertPrice(key catalog.PriceKey, cents int64) error {
	if _, dup := f.prices[key]; dup {
		return errFloorExists
	}
	f.prices[key] = catalog.PriceRow{Cents: cents}
	return nil
}

// owned returns the product if it exists and seller owns it. f.mu is held.
func (f *Floor) owned(id, seller string) (catalog.Product, error) {
	p, ok := f.products[id]
	if !ok {
		return p, errFloorNotFound
	}
	if p.SellerID != seller {
		return p, errFloorForbidden
	}
	return p, nil
}

// UpdatePrice handles catalog.UpdatePrice.
func (f *Floor) UpdatePrice(c catalog.UpdatePrice) error {
	if err := c.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e, changed, err := f.updatePriceLocked(c)
	if changed {
		f.View.PriceChanged(e)
	}
	return err
}

// updatePriceLocked is the write-model half of UpdatePrice. f.mu is held.
func (f *Floor) updatePriceLocked(c catalog.UpdatePrice) (FloorPriceChanged, bool, error) {
	p, err := f.owned(c.ProductID, c.SellerID)
	if err != nil || p.PriceCents == c.PriceCents {
		return FloorPriceChanged{}, false, err
	}
	old := p.PriceCents
	p.PriceCents = c.PriceCents
	p.PriceSeq++
	if err := f.insertPrice(catalog.PriceKey{ProductID: c.ProductID, Seq: p.PriceSeq}, c.PriceCents); err != nil {
		return FloorPriceChanged{}, false, err
	}
	f.products[c.ProductID] = p
	return FloorPriceChanged{ProductID: c.ProductID, OldCents: old, NewCents: c.PriceCents, At: f.now()}, true, nil
}

// UpdateStock handles catalog.UpdateStock.
func (f *Floor) UpdateStock(c catalog.UpdateStock) error {
	if err := c.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.owned(c.ProductID, c.SellerID)
	if err != nil || p.Stock == c.Stock {
		return err
	}
	p.Stock = c.Stock
	f.products[c.ProductID] = p
	f.View.StockChanged(FloorStockChanged{ProductID: c.ProductID, Stock: c.Stock, At: f.now()})
	return nil
}

// UpdateDetails handles catalog.UpdateDetails.
func (f *Floor) UpdateDetails(c catalog.UpdateDetails) error {
	if err := c.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.owned(c.ProductID, c.SellerID)
	if err != nil {
		return err
	}
	p.Title, p.Description = c.Title, c.Description
	f.products[c.ProductID] = p
	f.View.DetailsChanged(FloorDetailsChanged{ProductID: c.ProductID, Title: c.Title, Description: c.Description, At: f.now()})
	return nil
}

// SubmitReview handles catalog.SubmitReview.
func (f *Floor) SubmitReview(c catalog.SubmitReview) error {
	if err := c.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := f.submitReviewLocked(c)
	if err == nil {
		f.View.ReviewSubmitted(e)
	}
	return err
}

// submitReviewLocked is the write-model half of SubmitReview. f.mu is held.
func (f *Floor) submitReviewLocked(c catalog.SubmitReview) (FloorReviewSubmitted, error) {
	if _, ok := f.products[c.ProductID]; !ok {
		return FloorReviewSubmitted{}, errFloorNotFound
	}
	if _, dup := f.reviews[c.ReviewID]; dup {
		return FloorReviewSubmitted{}, errFloorExists
	}
	f.reviews[c.ReviewID] = catalog.Review{ID: c.ReviewID, ProductID: c.ProductID, Author: c.Author, Rating: c.Rating, Text: c.Text}
	return FloorReviewSubmitted{ReviewID: c.ReviewID, ProductID: c.ProductID, Author: c.Author, Rating: c.Rating, Text: c.Text, At: f.now()}, nil
}

// SetShipping handles catalog.SetShipping.
func (f *Floor) SetShipping(c catalog.SetShipping) error {
	if err := c.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.owned(c.ProductID, c.SellerID); err != nil {
		return err
	}
	opts := append([]catalog.ShippingOption(nil), c.Options...)
	f.shipping[c.ProductID] = opts
	f.View.ShippingSet(FloorShippingSet{ProductID: c.ProductID, Options: opts, At: f.now()})
	return nil
}

// FloorProduct is the floor's product view: the same information as
// catalog.ProductView.
type FloorProduct struct {
	ID, Title, Description string
	PriceCents             int64
	Stock                  int
	InStock                bool
	RatingSum, RatingCount int64
	// Recent holds the last catalog.RecentReviews reviews, newest first,
	// in the same immutable building block as catalog.ProductView.
	Recent               readmodel.Recent[catalog.ReviewSummary]
	SellerID, SellerName string
	SellerRating         float64
	Shipping             []catalog.ShippingOption
	// History is oldest first. Its backing array is shared with later
	// versions, which append past its end (see PriceChanged); Product
	// clips it to cap=len.
	History            []catalog.PricePoint
	PriceDropped       bool
	PreviousPriceCents int64
	Version            uint64
	UpdatedAt          time.Time
}

// AverageRating is the mean rating rounded to one decimal, halves up.
func (p *FloorProduct) AverageRating() float64 {
	if p.RatingCount == 0 {
		return 0
	}
	return float64((20*p.RatingSum+p.RatingCount)/(2*p.RatingCount)) / 10
}

// Mean is the unrounded mean rating.
func (p *FloorProduct) Mean() float64 {
	if p.RatingCount == 0 {
		return 0
	}
	return float64(p.RatingSum) / float64(p.RatingCount)
}

// PriceDaysAgo returns the price in effect days before now.
func (p *FloorProduct) PriceDaysAgo(now time.Time, days int) (int64, bool) {
	t := now.Add(-time.Duration(days) * 24 * time.Hour)
	for i := len(p.History) - 1; i >= 0; i-- {
		if !p.History[i].At.After(t) {
			return p.History[i].Cents, true
		}
	}
	return 0, false
}

// FloorView is the floor's read side: product views in a map under a
// sync.RWMutex. Like the catalog's views, each product view is an immutable
// snapshot: a writer builds a new one for every change and swaps the map
// entry, and a reader takes the pointer under the read lock and copies the
// view after releasing it. Slices inside a view are never written once
// published (Recent and Shipping are replaced; History is extended past
// the end that published versions see, as catalog.Views does).
//
// Next to the product views it keeps the same secondary read models as
// catalog.Views and catalog.Trending, updated under the same conditions:
// products by seller, in stock, top rated (products with at least
// catalog.TopRatedMinReviews reviews, by mean rating) and the times of each
// product's last trendingThreshold reviews.
type FloorView struct {
	mu       sync.RWMutex
	products map[string]*FloorProduct
	sellers  map[string]FloorSellerRegistered
	bySeller *readmodel.Index[string, string]
	inStock  *readmodel.SortedSet[string]
	topRated *readmodel.Ranking[string]
	trending map[string]readmodel.Recent[time.Time] // as catalog.Trending keeps them
}

// trendingWindow and trendingThreshold mirror the catalog.Trending that
// catalog.Open installs.
const (
	trendingWindow    = 7 * 24 * time.Hour
	trendingThreshold = 3
)

// NewFloorView returns an empty view.
func NewFloorView() *FloorView {
	return &FloorView{
		products: make(map[string]*FloorProduct),
		sellers:  make(map[string]FloorSellerRegistered),
		bySeller: readmodel.NewIndex[string, string](),
		inStock:  readmodel.NewSortedSet[string](),
		topRated: readmodel.NewRanking[string](),
		trending: make(map[string]readmodel.Recent[time.Time]),
	}
}

// TopRated appends to dst the n best-rated products with at least
// catalog.TopRatedMinReviews reviews, from the maintained ranking (the
// scans below are the index-free baselines).
func (v *FloorView) TopRated(n int, dst []catalog.Rated) []catalog.Rated {
	return v.topRated.Top(n, dst)
}

// InStock appends to dst up to limit in-stock product IDs after the cursor,
// from the maintained in-stock set.
func (v *FloorView) InStock(after string, limit int, dst []string) []string {
	if after == "" {
		return v.inStock.Page(limit, dst)
	}
	return v.inStock.PageAfter(after, limit, dst)
}

// BySeller appends to dst the IDs of the seller's products in ID order.
func (v *FloorView) BySeller(sellerID string, dst []string) []string {
	return v.bySeller.Keys(sellerID, dst)
}

// IsTrending reports whether the product had at least trendingThreshold
// reviews in the trendingWindow before now, like catalog.Trending.
func (v *FloorView) IsTrending(productID string, now time.Time) bool {
	v.mu.RLock()
	times := v.trending[productID]
	v.mu.RUnlock()
	return times.Len() >= trendingThreshold && now.Sub(times.At(times.Len()-1)) <= trendingWindow
}

// Product returns a copy of the product view. It does not allocate.
func (v *FloorView) Product(id string) (FloorProduct, bool) {
	v.mu.RLock()
	p := v.products[id]
	v.mu.RUnlock()
	if p == nil {
		return FloorProduct{}, false
	}
	c := *p // p is immutable: no lock needed to copy it
	// The writer appends past the end of the history's array: clip it so
	// that an append of the caller's copies.
	c.History = c.History[:len(c.History):len(c.History)]
	return c, true
}

// change publishes a new snapshot of product id made by fn from a copy of
// the current one, and returns it (nil if the product is unknown). v.mu is
// held.
func (v *FloorView) change(id string, fn func(p *FloorProduct)) *FloorProduct {
	old := v.products[id]
	if old == nil {
		return nil
	}
	p := new(FloorProduct)
	*p = *old
	fn(p)
	v.products[id] = p
	return p
}

// Len returns the number of product views.
func (v *FloorView) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.products)
}

// SellerRegistered applies the event.
func (v *FloorView) SellerRegistered(e FloorSellerRegistered) {
	v.mu.Lock()
	v.sellers[e.SellerID] = e
	v.mu.Unlock()
}

// SellerChanged applies a rename or re-rating to the seller and every
// product view of the seller.
func (v *FloorView) SellerChanged(e FloorSellerChanged) {
	v.mu.Lock()
	v.sellers[e.SellerID] = FloorSellerRegistered(e)
	for id := range v.bySeller.All(e.SellerID) {
		v.change(id, func(p *FloorProduct) { p.SellerName, p.SellerRating = e.Name, e.Rating })
	}
	v.mu.Unlock()
}

// ProductListed applies the event.
func (v *FloorView) ProductListed(e FloorProductListed) {
	v.mu.Lock()
	s := v.sellers[e.SellerID]
	v.products[e.ProductID] = &FloorProduct{
		ID: e.ProductID, Title: e.Title, Description: e.Description,
		PriceCents: e.PriceCents, Stock: e.Stock, InStock: e.Stock > 0,
		SellerID: e.SellerID, SellerName: s.Name, SellerRating: s.Rating,
		History: []catalog.PricePoint{{At: e.At, Cents: e.PriceCents}},
		Recent:  readmodel.NewRecent[catalog.ReviewSummary](catalog.RecentReviews),
		Version: 1, UpdatedAt: e.At,
	}
	v.bySeller.Add(e.SellerID, e.ProductID)
	v.indexStock(e.ProductID, e.Stock > 0)
	v.mu.Unlock()
}

// historyWindow and maxHistory mirror the catalog's product view.
const (
	historyWindow = 90 * 24 * time.Hour
	maxHistory    = 64
)

// PriceChanged applies the event.
func (v *FloorView) PriceChanged(e FloorPriceChanged) {
	v.mu.Lock()
	v.change(e.ProductID, func(p *FloorProduct) {
		p.PreviousPriceCents = p.PriceCents
		p.PriceDropped = e.NewCents < p.PriceCents
		p.PriceCents = e.NewCents
		h := p.History
		cut := e.At.Add(-historyWindow)
		start := 0
		for i := len(h) - 1; i >= 0; i-- {
			if !h[i].At.After(cut) {
				start = i
				break
			}
		}
		if n := len(h) - start + 1; n > maxHistory {
			start += n - maxHistory
		}
		// As the catalog's view does: append in place when the array has
		// room past the end of the newest version (no reader looks
		// there; v.mu makes this the one writer), else copy the kept
		// points into a new array with room for half as many again.
		pt := catalog.PricePoint{At: e.At, Cents: e.NewCents}
		if h = h[start:]; len(h) < cap(h) {
			p.History = append(h, pt)
		} else {
			n := len(h) + 1
			history := make([]catalog.PricePoint, n, n+n/2)
			copy(history, h)
			history[n-1] = pt
			p.History = history
		}
		p.Version++
		p.UpdatedAt = e.At
	})
	v.mu.Unlock()
}

// StockChanged applies the event.
func (v *FloorView) StockChanged(e FloorStockChanged) {
	v.mu.Lock()
	was := false
	if p := v.change(e.ProductID, func(p *FloorProduct) {
		was = p.InStock
		p.Stock, p.InStock = e.Stock, e.Stock > 0
		p.Version++
		p.UpdatedAt = e.At
	}); p != nil && p.InStock != was {
		v.indexStock(p.ID, p.InStock)
	}
	v.mu.Unlock()
}

// DetailsChanged applies the event.
func (v *FloorView) DetailsChanged(e FloorDetailsChanged) {
	v.mu.Lock()
	v.change(e.ProductID, func(p *FloorProduct) {
		p.Title, p.Description = e.Title, e.Description
		p.Version++
		p.UpdatedAt = e.At
	})
	v.mu.Unlock()
}

// ReviewSubmitted applies the event.
func (v *FloorView) ReviewSubmitted(e FloorReviewSubmitted) {
	v.mu.Lock()
	if p := v.change(e.ProductID, func(p *FloorProduct) {
		p.RatingSum += int64(e.Rating)
		p.RatingCount++
		p.Recent = p.Recent.Push(catalog.ReviewSummary{ReviewID: e.ReviewID, Author: e.Author, Rating: e.Rating, Text: e.Text, At: e.At})
		p.Version++
		p.UpdatedAt = e.At
	}); p != nil && p.RatingCount >= catalog.TopRatedMinReviews {
		v.topRated.Set(p.ID, p.Mean())
	}
	// catalog.Trending is a separate projector: it records the review even
	// for a product it has not seen listed.
	times, ok := v.trending[e.ProductID]
	if !ok {
		times = readmodel.NewRecent[time.Time](trendingThreshold)
	}
	v.trending[e.ProductID] = times.Push(e.At)
	v.mu.Unlock()
}

// ShippingSet applies the event; the view keeps e.Options, which the
// write side does not modify.
func (v *FloorView) ShippingSet(e FloorShippingSet) {
	v.mu.Lock()
	v.change(e.ProductID, func(p *FloorProduct) {
		p.Shipping = e.Options
		p.Version++
		p.UpdatedAt = e.At
	})
	v.mu.Unlock()
}

// indexStock records whether a product is in stock. v.mu is held.
func (v *FloorView) indexStock(id string, in bool) {
	if in {
		v.inStock.Add(id)
	} else {
		v.inStock.Remove(id)
	}
}

// betterRated orders by mean rating descending, then ID ascending, like
// catalog.Views.TopRated.
func betterRated(a, b catalog.Rated) int {
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	return cmp.Compare(a.Key, b.Key)
}

// TopRatedScan is the baseline top-rated query: one pass over every
// product, keeping the best n in a small sorted buffer (O(N), no sort of
// the whole catalog). It appends to dst[:0].
func (v *FloorView) TopRatedScan(n int, dst []catalog.Rated) []catalog.Rated {
	dst = dst[:0]
	v.mu.RLock()
	defer v.mu.RUnlock()
	for id, p := range v.products {
		if p.RatingCount < catalog.TopRatedMinReviews {
			continue
		}
		r := catalog.Rated{Key: id, Score: p.Mean()}
		if len(dst) == n && betterRated(r, dst[n-1]) >= 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(dst, r, betterRated)
		if len(dst) < n {
			dst = append(dst, catalog.Rated{})
		}
		copy(dst[i+1:], dst[i:len(dst)-1])
		dst[i] = r
	}
	return dst
}

// TopRatedSort is the naive baseline: collect every ranked product into
// scratch and sort it. It returns the best n (a prefix of scratch).
func (v *FloorView) TopRatedSort(n int, scratch []catalog.Rated) []catalog.Rated {
	scratch = scratch[:0]
	v.mu.RLock()
	for id, p := range v.products {
		if p.RatingCount >= catalog.TopRatedMinReviews {
			scratch = append(scratch, catalog.Rated{Key: id, Score: p.Mean()})
		}
	}
	v.mu.RUnlock()
	slices.SortFunc(scratch, betterRated)
	return scratch[:min(n, len(scratch))]
}

// InStockScan is the baseline in-stock page: one pass over every product,
// keeping the limit smallest in-stock IDs after the cursor. It appends to
// dst[:0].
func (v *FloorView) InStockScan(after string, limit int, dst []string) []string {
	dst = dst[:0]
	v.mu.RLock()
	defer v.mu.RUnlock()
	for id, p := range v.products {
		if !p.InStock || (after != "" && id <= after) {
			continue
		}
		if len(dst) == limit && id >= dst[limit-1] {
			continue
		}
		i, _ := slices.BinarySearch(dst, id)
		if len(dst) < limit {
			dst = append(dst, "")
		}
		copy(dst[i+1:], dst[i:len(dst)-1])
		dst[i] = id
	}
	return dst
}
