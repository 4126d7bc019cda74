package catalog

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/readmodel"
)

// RecentReviews is how many reviews a product view keeps, newest first.
const RecentReviews = 5

// TopRatedMinReviews is how many reviews a product needs to be ranked.
const TopRatedMinReviews = 3

// historyWindow is how far back a product view answers "price N days ago".
const historyWindow = 90 * 24 * time.Hour

// maxHistory bounds the price points a view keeps, so a product whose price
// changes every minute does not grow its view without limit.
const maxHistory = 64

// ReviewSummary is a review as shown on the product page.
type ReviewSummary struct {
	ReviewID string
	Author   string
	Rating   int
	Text     string
	At       time.Time
}

// ProductView answers, in one lookup, everything the product page's 5-table
// JOIN returned. Values are immutable once stored: the projector builds a
// new one for every change, so readers can keep what they got. (History's
// backing array is shared with later versions, which append past its end;
// the views a reader gets have it clipped, so that an append of the
// reader's own copies the points instead of writing into that array.)
type ProductView struct {
	ID          string
	Title       string
	Description string
	PriceCents  int64
	Stock       int
	InStock     bool
	// Ratings accumulates review ratings; see AverageRating and
	// ReviewCount.
	Ratings readmodel.RunningAverage
	// Recent holds the last RecentReviews reviews, newest first.
	Recent       readmodel.Recent[ReviewSummary]
	SellerID     string
	SellerName   string
	SellerRating float64
	Shipping     []ShippingOption
	// History lists price changes, oldest first, as far back as needed to
	// answer PriceDaysAgo for up to 90 days.
	History []PricePoint
	// PriceDropped is true when the last price change lowered the price;
	// PreviousPriceCents is the price before that change.
	PriceDropped       bool
	PreviousPriceCents int64
	// Version is the version of the product (its event stream) that this
	// view reflects: 1 when listed, one more for every change to the
	// product, its reviews or its shipping options. A client sends it back
	// as the ExpectedVersion of UpdatePrice, UpdateStock, UpdateDetails or
	// SetShipping (an HTTP ETag / If-Match) to change the product only if
	// nobody changed it since it read the view.
	Version   uint64
	UpdatedAt time.Time
}

// AverageRating is the mean review rating rounded to one decimal.
func (v ProductView) AverageRating() float64 { return v.Ratings.Round(1) }

// ReviewCount is the number of reviews.
func (v ProductView) ReviewCount() int { return int(v.Ratings.Count()) }

// ShippingMethods lists the shipping method names.
func (v ProductView) ShippingMethods() []string {
	out := make([]string, len(v.Shipping))
	for i, o := range v.Shipping {
		out[i] = o.Method
	}
	return out
}

// PriceAt returns the price in effect at t, and false if t is before the
// oldest price the view keeps.
func (v ProductView) PriceAt(t time.Time) (int64, bool) {
	for i := len(v.History) - 1; i >= 0; i-- {
		if !v.History[i].At.After(t) {
			return v.History[i].Cents, true
		}
	}
	return 0, false
}

// PriceDaysAgo returns the price in effect days before now (up to 90 days).
func (v ProductView) PriceDaysAgo(now time.Time, days int) (int64, bool) {
	return v.PriceAt(now.Add(-time.Duration(days) * 24 * time.Hour))
}

// SellerView is the seller data that product views copy.
type SellerView struct {
	ID     string
	Name   string
	Rating float64
}

// viewSet is one generation of the catalog's read models. Rebuild fills a
// fresh set while the current one serves, then swaps the pointer.
type viewSet struct {
	products *readmodel.Map[string, ProductView]
	sellers  *readmodel.Map[string, SellerView]
	bySeller *readmodel.Index[string, string]
	topRated *readmodel.Ranking[string]
	inStock  *readmodel.SortedSet[string]
	router   event.Router

	// bulk is set while a rebuild replays the log into this (still
	// private) set: product views then live in bulkProducts, the builder
	// of the products map, and are changed in place (no reader can see them yet, so the copy-on-write
	// that lock-free readers need is wasted work), and the ranking and the
	// in-stock set, which only queries read and which depend only on each
	// product's latest view, are not touched per event. Flush publishes
	// the views and loads both indexes from them.
	bulk         bool
	bulkProducts *readmodel.MapBuilder[string, ProductView]
	bulkLastID   string       // the product bulkView returned last
	bulkLast     *ProductView // (or productListed listed last)
	// bulkSellers is products-by-seller during the bulk replay, in
	// listing order: flush loads the index from it, one bottom-up build
	// per seller instead of a copied tree path per product.
	bulkSellers map[string][]string

	// stage is set while HandleBatch applies a batch to the live set:
	// the product views the batch changes are copied here once, changed
	// in place, and published (one Put, one index update each) when the
	// batch ends, so a product that several events of the batch touch is
	// copied and re-indexed once, not once per event. Readers see the
	// views as of the previous batch until then, which is all WaitFor
	// promises: the runner publishes the batch's position after
	// HandleBatch returns.
	// batchMu keeps a batch's stage to one goroutine: a runner calls
	// Handle and HandleBatch one at a time, but a Views fed by two
	// runners (or partitions) must not see another caller's stage.
	batchMu sync.Mutex
	staging bool
	stage   map[string]*staged
	slab    []staged // backing store of stage, reused from batch to batch
	// lastID and last are the product the batch staged or looked up
	// last: a product's events tend to come together (a listing and its
	// first reviews), so stageOf checks it before the map.
	lastID  string
	last    *staged
	inBuf   []string // publish's in-stock additions, reused
	rankBuf []Rated  // publish's ranking changes, reused
}

// staged is a product view being changed by a batch, with what the
// secondary indexes hold for it.
type staged struct {
	view    ProductView
	ref     readmodel.Ref[string, ProductView] // where the published view is, for publish's store
	existed bool                               // published before the batch (else listed by it)
	inStock bool                               // view.InStock as published
	ratings readmodel.RunningAverage
}

func newViewSet() *viewSet {
	vs := &viewSet{
		products: readmodel.NewMap[string, ProductView](),
		sellers:  readmodel.NewMap[string, SellerView](),
		bySeller: readmodel.NewIndex[string, string](),
		topRated: readmodel.NewRanking[string](),
		inStock:  readmodel.NewSortedSet[string](),
	}
	r := &vs.router
	route(r, vs.sellerRegistered)
	route(r, vs.sellerRenamed)
	route(r, vs.sellerRated)
	route(r, vs.productListed)
	route(r, vs.priceChanged)
	route(r, vs.stockChanged)
	route(r, vs.stockReserved)
	route(r, vs.restocked)
	route(r, vs.detailsChanged)
	route(r, vs.reviewSubmitted)
	route(r, vs.shippingSet)
	return vs
}

// route routes events of type E to fn on r. The catalog's handlers cannot
// fail: their events were validated when recorded.
func route[E event.Event](r *event.Router, fn func(*event.Record, E)) {
	event.On(r, func(_ context.Context, rec event.Record, e E) error {
		fn(&rec, e)
		return nil
	})
}

// apply hands rec to its handler, as vs.router.Handle would: a type switch
// on the payload finds it without the router's map lookup by type name and
// without copying the record through the router's closures. A record whose
// payload does not match its type name, or whose type the views do not
// handle, goes to the router, which reports the first and ignores the
// second.
func (vs *viewSet) apply(ctx context.Context, rec *event.Record) error {
	switch e := rec.Data.(type) {
	case PriceChanged:
		if rec.Type == e.EventType() {
			vs.priceChanged(rec, e)
			return nil
		}
	case ReviewSubmitted:
		if rec.Type == e.EventType() {
			vs.reviewSubmitted(rec, e)
			return nil
		}
	case StockChanged:
		if rec.Type == e.EventType() {
			vs.stockChanged(rec, e)
			return nil
		}
	case StockReserved:
		if rec.Type == e.EventType() {
			vs.stockReserved(rec, e)
			return nil
		}
	case Restocked:
		if rec.Type == e.EventType() {
			vs.restocked(rec, e)
			return nil
		}
	case ProductListed:
		if rec.Type == e.EventType() {
			vs.productListed(rec, e)
			return nil
		}
	case ShippingSet:
		if rec.Type == e.EventType() {
			vs.shippingSet(rec, e)
			return nil
		}
	case DetailsChanged:
		if rec.Type == e.EventType() {
			vs.detailsChanged(rec, e)
			return nil
		}
	case SellerRegistered:
		if rec.Type == e.EventType() {
			vs.sellerRegistered(rec, e)
			return nil
		}
	case SellerRenamed:
		if rec.Type == e.EventType() {
			vs.sellerRenamed(rec, e)
			return nil
		}
	case SellerRated:
		if rec.Type == e.EventType() {
			vs.sellerRated(rec, e)
			return nil
		}
	}
	return vs.router.Handle(ctx, *rec)
}

// Views is the catalog's main projector: product views, sellers, top-rated,
// in-stock and products-by-seller. Its query methods are safe for concurrent
// use with the projection and never wait on it.
type Views struct {
	cur atomic.Pointer[viewSet]
}

var (
	_ projection.Projector    = (*Views)(nil)
	_ projection.Rebuilder    = (*Views)(nil)
	_ projection.BatchHandler = (*Views)(nil)
)

// ViewsVersion is the logic version of Views: add it with
// projection.WithVersion(ViewsVersion), and bump it when the fold changes.
const ViewsVersion = 2

// NewViews returns empty views.
func NewViews() *Views {
	v := &Views{}
	v.cur.Store(newViewSet())
	return v
}

// Name implements projection.Projector.
func (v *Views) Name() string { return "catalog.views" }

// Handle implements projection.Projector.
func (v *Views) Handle(ctx context.Context, rec event.Record) error {
	return v.cur.Load().Handle(ctx, rec)
}

// Shadow implements projection.Rebuilder. Until its Flush the shadow
// changes its product views in place and leaves the ranking and in-stock
// indexes alone; Flush publishes the views and loads each index in one go,
// so a rebuild pays for copy-on-write and index updates once per product
// rather than once per event.
func (v *Views) Shadow(context.Context) (projection.Shadow, error) {
	vs := newViewSet()
	vs.bulk = true
	vs.bulkProducts = readmodel.NewMapBuilder[string, ProductView]()
	vs.bulkSellers = make(map[string][]string)
	return projection.Shadow{Handler: vs, Flush: vs.flush, Swap: func() { v.cur.Store(vs) }}, nil
}

// HandleBatch implements projection.BatchHandler: the batch's changes to a
// product view are made to one private copy and published together, with
// one update of the secondary indexes per product, when the batch ends.
func (v *Views) HandleBatch(ctx context.Context, recs []event.Record) (int, error) {
	return v.cur.Load().HandleBatch(ctx, recs)
}

// Handle applies one event to the set.
func (vs *viewSet) Handle(ctx context.Context, rec event.Record) error {
	vs.batchMu.Lock()
	defer vs.batchMu.Unlock()
	return vs.apply(ctx, &rec)
}

// HandleBatch applies recs to the set: in place during a rebuild's bulk
// replay, else through the stage. On an error at recs[i] it publishes
// what recs[:i] did and returns i; the catalog's handlers fail only before
// they change anything.
func (vs *viewSet) HandleBatch(ctx context.Context, recs []event.Record) (n int, err error) {
	vs.batchMu.Lock()
	defer vs.batchMu.Unlock()
	if vs.bulk {
		for i := range recs {
			if err := vs.apply(ctx, &recs[i]); err != nil {
				return i, err
			}
		}
		return len(recs), nil
	}
	if vs.stage == nil {
		vs.stage = make(map[string]*staged)
	}
	vs.staging = true
	if cap(vs.slab) < len(recs) {
		vs.slab = make([]staged, 0, len(recs)) // one entry per record at most
	}
	defer func() {
		if v := recover(); v != nil {
			// Publish what the records before it did; the runner gives
			// recs[n] to Handle.
			err = &event.PanicError{Value: v, Stack: debug.Stack()}
		}
		vs.publish()
		vs.staging = false
	}()
	for n = range recs {
		if err := vs.apply(ctx, &recs[n]); err != nil {
			return n, err
		}
	}
	return len(recs), nil
}

// stageOf returns the staged copy of product id, staging the published
// view first; nil if there is no such product.
func (vs *viewSet) stageOf(id string) *staged {
	if vs.last != nil && vs.lastID == id {
		return vs.last
	}
	if s := vs.stage[id]; s != nil {
		vs.lastID, vs.last = id, s
		return s
	}
	p, ref, ok := vs.products.LoadRef(id)
	if !ok {
		return nil
	}
	// The stage extends the published history in place (see
	// appendHistory): readers of p never look past its end.
	vs.slab = append(vs.slab, staged{view: p, ref: ref, existed: true, inStock: p.InStock, ratings: p.Ratings})
	s := &vs.slab[len(vs.slab)-1]
	vs.stage[id] = s
	vs.lastID, vs.last = id, s
	return s
}

// publish stores the staged views and updates the indexes once per
// product, then empties the stage.
func (vs *viewSet) publish() {
	in, ranked := vs.inBuf[:0], vs.rankBuf[:0]
	for id, s := range vs.stage {
		p := &s.view
		vs.products.StoreRef(s.ref, id, *p) // History keeps its spare capacity: see appendHistory
		if !s.existed || p.InStock != s.inStock {
			if p.InStock {
				in = append(in, id) // added below in one go
			} else {
				vs.inStock.Remove(id)
			}
		}
		if (!s.existed || p.Ratings != s.ratings) && p.ReviewCount() >= TopRatedMinReviews {
			ranked = append(ranked, Rated{Key: id, Score: p.Ratings.Mean()})
		}
	}
	// One copy of each tree node on the paths to the batch's keys,
	// instead of a path copy per key; one lock and one published top list
	// for the ranking.
	vs.inStock.AddMany(in)
	vs.topRated.SetMany(ranked)
	clear(in)
	vs.inBuf = in[:0]
	clear(ranked)
	vs.rankBuf = ranked[:0]
	clear(vs.stage)
	vs.lastID, vs.last = "", nil
	clear(vs.slab) // drop references to the views' strings and slices
	vs.slab = vs.slab[:0]
}

// flush applies the deferred index updates and ends bulk mode.
func (vs *viewSet) flush(context.Context) error {
	if !vs.bulk {
		return nil // a rebuild flushes twice; bulk mode ended at the first
	}
	// Load each index in one go from the final views, as the per-event
	// updates would have left it: a bulk load links or builds it in order
	// instead of searching, or copying a tree path, per product. The
	// indexes are empty until now.
	// The views are in the products map already (see productListed).
	ranked := make([]Rated, 0, vs.bulkProducts.Len())
	in := make([]string, 0, vs.bulkProducts.Len())
	vs.bulkProducts.Range(func(id string, p *ProductView) bool {
		if p.ReviewCount() >= TopRatedMinReviews {
			ranked = append(ranked, Rated{Key: id, Score: p.Ratings.Mean()})
		}
		if p.InStock {
			in = append(in, id)
		}
		return true
	})
	vs.products = vs.bulkProducts.Map()
	vs.topRated.SetMany(ranked)
	vs.inStock.AddMany(in)
	for seller, ids := range vs.bulkSellers {
		vs.bySeller.AddMany(seller, ids)
	}
	vs.bulk, vs.bulkProducts, vs.bulkSellers = false, nil, nil
	vs.bulkLastID, vs.bulkLast = "", nil
	return nil
}

// Product returns the product view.
func (v *Views) Product(id string) (ProductView, bool) {
	p, ok := v.cur.Load().products.Load(id)
	p.History = clipHistory(p.History)
	return p, ok
}

// Seller returns the seller view.
func (v *Views) Seller(id string) (SellerView, bool) {
	return v.cur.Load().sellers.Load(id)
}

// ProductCount returns the number of product views.
func (v *Views) ProductCount() int { return v.cur.Load().products.Len() }

// Rated is an entry of the top-rated list.
type Rated = readmodel.Ranked[string]

// TopRated appends to dst the n best-rated products with at least
// TopRatedMinReviews reviews, best first (ties by product ID). It costs O(n),
// whatever the catalog size, and does not allocate when dst has room.
func (v *Views) TopRated(n int, dst []Rated) []Rated {
	return v.cur.Load().topRated.Top(n, dst)
}

// InStock appends to dst up to limit IDs of in-stock products in ID order,
// starting after the cursor `after` ("" starts at the beginning). Pass the
// last ID of a page as the cursor for the next page.
func (v *Views) InStock(after string, limit int, dst []string) []string {
	if after == "" {
		return v.cur.Load().inStock.Page(limit, dst)
	}
	return v.cur.Load().inStock.PageAfter(after, limit, dst)
}

// InStockCount returns the number of in-stock products.
func (v *Views) InStockCount() int { return v.cur.Load().inStock.Len() }

// BySeller appends to dst the IDs of the seller's products in ID order.
func (v *Views) BySeller(sellerID string, dst []string) []string {
	return v.cur.Load().bySeller.Keys(sellerID, dst)
}

// Each calls fn for every product view until it returns false (a weakly
// consistent snapshot; used by tests and exports).
func (v *Views) Each(fn func(ProductView) bool) {
	v.cur.Load().products.Range(func(_ string, p ProductView) bool {
		p.History = clipHistory(p.History)
		return fn(p)
	})
}

func (vs *viewSet) sellerRegistered(_ *event.Record, e SellerRegistered) {
	vs.sellers.Update(e.SellerID, func(SellerView, bool) (SellerView, bool) {
		return SellerView{ID: e.SellerID, Name: e.Name, Rating: e.Rating}, true
	})
}

// sellerRenamed reaches every product view of the seller: the rename is one
// event on the write side and N view updates here, which is the trade CQRS
// makes so the product page stays one lookup.
func (vs *viewSet) sellerRenamed(_ *event.Record, e SellerRenamed) {
	s := vs.updateSeller(e.SellerID, func(s *SellerView) { s.Name = e.Name })
	vs.refreshSellerProducts(s)
}

func (vs *viewSet) sellerRated(_ *event.Record, e SellerRated) {
	s := vs.updateSeller(e.SellerID, func(s *SellerView) { s.Rating = e.Rating })
	vs.refreshSellerProducts(s)
}

func (vs *viewSet) updateSeller(id string, fn func(*SellerView)) SellerView {
	var out SellerView
	vs.sellers.Update(id, func(s SellerView, _ bool) (SellerView, bool) {
		s.ID = id
		fn(&s)
		out = s
		return s, true
	})
	return out
}

func (vs *viewSet) refreshSellerProducts(s SellerView) {
	if vs.bulk {
		// The index is loaded at flush; bulkSellers may list a product
		// twice (listed twice), which sets the same fields twice.
		for _, id := range vs.bulkSellers[s.ID] {
			if p := vs.bulkProducts.Value(id); p != nil {
				p.SellerName, p.SellerRating = s.Name, s.Rating
			}
		}
		return
	}
	for _, id := range vs.bySeller.Keys(s.ID, nil) {
		if vs.staging {
			if p := vs.stage[id]; p != nil {
				p.view.SellerName, p.view.SellerRating = s.Name, s.Rating
				continue
			}
		}
		vs.products.Update(id, func(p ProductView, ok bool) (ProductView, bool) {
			if ok {
				p.SellerName, p.SellerRating = s.Name, s.Rating
			}
			return p, ok
		})
	}
}

func (vs *viewSet) productListed(rec *event.Record, e ProductListed) {
	s, _ := vs.sellers.Load(e.SellerID)
	p := ProductView{
		ID: e.ProductID, Title: e.Title, Description: e.Description,
		PriceCents: e.PriceCents, Stock: e.Stock, InStock: e.Stock > 0,
		Recent:   readmodel.NewRecent[ReviewSummary](RecentReviews),
		SellerID: e.SellerID, SellerName: s.Name, SellerRating: s.Rating,
		History: []PricePoint{{At: rec.Time, Cents: e.PriceCents}},
		Version: rec.Version, UpdatedAt: rec.Time,
	}
	if vs.bulk {
		// flush publishes and indexes the final view; until then it is
		// changed in place in the products map being built.
		bp := vs.bulkProducts.Put(e.ProductID, p)
		vs.bulkLastID, vs.bulkLast = e.ProductID, bp // its shipping and reviews come next
		vs.bulkSellers[e.SellerID] = append(vs.bulkSellers[e.SellerID], e.ProductID)
		return
	}
	if vs.staging {
		// publish stores and indexes the view as of the batch's end.
		if st := vs.stage[e.ProductID]; st != nil {
			st.view = p
		} else {
			vs.slab = append(vs.slab, staged{view: p})
			st = &vs.slab[len(vs.slab)-1]
			vs.stage[e.ProductID] = st
			vs.lastID, vs.last = e.ProductID, st // its reviews come next
		}
		vs.bySeller.Add(e.SellerID, e.ProductID)
		return
	}
	vs.products.Put(context.Background(), e.ProductID, p)
	vs.bySeller.Add(e.SellerID, e.ProductID)
	vs.index(p)
}

// change applies fn to the product view, then touches the secondary
// indexes only if what they order by changed: an index write costs far more
// than the view's own update. fn changes the view in place: during a
// rebuild's bulk replay the view itself (no reader can see it yet), in a
// batch its staged copy, else the new version's copy in the Map's new
// entry (Map.Modify), on the heap already, so passing it to fn makes no
// view escape.
func (vs *viewSet) change(rec *event.Record, id string, fn func(*ProductView)) {
	var stockChanged, ratingChanged bool
	var after ProductView
	if vs.bulk {
		p := vs.bulkView(id)
		if p == nil {
			return
		}
		fn(p)
		p.Version, p.UpdatedAt = rec.Version, rec.Time
		return // flush indexes the final view
	}
	if vs.staging {
		st := vs.stageOf(id)
		if st == nil {
			return
		}
		fn(&st.view)
		st.view.Version, st.view.UpdatedAt = rec.Version, rec.Time
		return // publish indexes the view as of the batch's end
	}
	found := vs.products.Modify(id, func(p, n *ProductView) {
		fn(n)
		n.Version, n.UpdatedAt = rec.Version, rec.Time
		stockChanged, ratingChanged = p.InStock != n.InStock, p.Ratings != n.Ratings
		if stockChanged || ratingChanged {
			after = *n
		}
	})
	if !found {
		return
	}
	if stockChanged {
		vs.indexStock(after)
	}
	if ratingChanged {
		vs.indexRating(after)
	}
}

// bulkView returns the view of product id during a bulk replay, nil if
// there is no such product. It checks the product it returned last before
// the map: a product's events tend to come together (a listing, its
// shipping options and first reviews).
func (vs *viewSet) bulkView(id string) *ProductView {
	if vs.bulkLast != nil && vs.bulkLastID == id {
		return vs.bulkLast
	}
	p := vs.bulkProducts.Value(id)
	if p != nil {
		vs.bulkLastID, vs.bulkLast = id, p
	}
	return p
}

// index adds a new product view to the secondary read models.
func (vs *viewSet) index(p ProductView) {
	vs.indexStock(p)
	vs.indexRating(p)
}

func (vs *viewSet) indexStock(p ProductView) {
	if p.InStock {
		vs.inStock.Add(p.ID)
	} else {
		vs.inStock.Remove(p.ID)
	}
}

func (vs *viewSet) indexRating(p ProductView) {
	if p.ReviewCount() >= TopRatedMinReviews {
		vs.topRated.Set(p.ID, p.Ratings.Mean())
	}
}

func (vs *viewSet) priceChanged(rec *event.Record, e PriceChanged) {
	vs.change(rec, e.ProductID, func(p *ProductView) {
		p.PreviousPriceCents = p.PriceCents
		p.PriceDropped = e.NewCents < p.PriceCents
		p.PriceCents = e.NewCents
		p.History = appendHistory(p.History, PricePoint{At: rec.Time, Cents: e.NewCents})
	})
}

// appendHistory returns a slice holding the points needed to answer prices
// up to 90 days before any time at or after the newest point, oldest first.
//
// It appends pt in place, at index len(h) of h's backing array, when the
// array has room there; else it copies the points it keeps into a new array
// with room for half as many again, so a price change costs O(1) amortised
// instead of a copy of the whole history. Writing in place is safe because
// the array is append-only: every version of the view published so far
// ends at or before len(h), so no reader ever reads the index written, and
// older versions keep their points (dropping old points only moves the new
// slice's start). That holds only if h is the history of the newest version
// of the view and only its one writer calls appendHistory on it: the
// projector's handlers run one at a time (batchMu, or the Map's lock
// around Update), and every view handed to users has its history clipped to
// cap=len (clipHistory), so that an append of theirs copies. A version that
// is never published (a batch's stage after a failure) may have written
// past the published end; the next append from the published version
// overwrites those slots, which no reader has seen.
func appendHistory(h []PricePoint, pt PricePoint) []PricePoint {
	cut := pt.At.Add(-historyWindow)
	start := 0
	// Keep the newest point at or before the cut: it is the price in
	// effect at the window's start.
	for i := len(h) - 1; i >= 0; i-- {
		if !h[i].At.After(cut) {
			start = i
			break
		}
	}
	if n := len(h) - start + 1; n > maxHistory {
		start += n - maxHistory
	}
	h = h[start:]
	if len(h) < cap(h) {
		return append(h, pt) // in place: see above
	}
	n := len(h) + 1
	out := make([]PricePoint, n, n+n/2)
	copy(out, h)
	out[n-1] = pt
	return out
}

// clipHistory returns h with its capacity cut to its length: a slice header
// change, no copy and no allocation.
func clipHistory(h []PricePoint) []PricePoint { return h[:len(h):len(h)] }

func (vs *viewSet) stockChanged(rec *event.Record, e StockChanged) {
	vs.change(rec, e.ProductID, func(p *ProductView) {
		p.Stock, p.InStock = e.Stock, e.Stock > 0
	})
}

func (vs *viewSet) stockReserved(rec *event.Record, e StockReserved) {
	vs.change(rec, e.ProductID, func(p *ProductView) {
		p.Stock, p.InStock = e.Stock, e.Stock > 0
	})
}

func (vs *viewSet) restocked(rec *event.Record, e Restocked) {
	vs.change(rec, e.ProductID, func(p *ProductView) {
		p.Stock, p.InStock = e.Stock, e.Stock > 0
	})
}

func (vs *viewSet) detailsChanged(rec *event.Record, e DetailsChanged) {
	vs.change(rec, e.ProductID, func(p *ProductView) {
		p.Title, p.Description = e.Title, e.Description
	})
}

func (vs *viewSet) reviewSubmitted(rec *event.Record, e ReviewSubmitted) {
	vs.change(rec, e.ProductID, func(p *ProductView) {
		p.Ratings = p.Ratings.Add(float64(e.Rating))
		p.Recent = p.Recent.Push(ReviewSummary{ReviewID: e.ReviewID, Author: e.Author, Rating: e.Rating, Text: e.Text, At: rec.Time})
	})
}

func (vs *viewSet) shippingSet(rec *event.Record, e ShippingSet) {
	vs.change(rec, e.ProductID, func(p *ProductView) {
		p.Shipping = e.Options
	})
}
