package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/store"
)

const day = 24 * time.Hour

// Catalog is a seeded catalog held twice, by cqrskit and by the floor, with
// identical data and timestamps.
type Catalog struct {
	Scale Scale
	Clock *Clock
	Store *store.Memory
	App   *catalog.App
	Floor *Floor
	// IDs[i] is product i and Owners[i] its seller.
	IDs, Owners []string
	// RefNow is the reference "now" of the seed: price-N-days-ago questions
	// are asked relative to it.
	RefNow time.Time
	// SeedHead is the log head once the catalog was built; benchmarks that
	// dispatch more commands move the head on, SQL loads stop here.
	SeedHead event.Position
}

// Close stops the catalog's projections and closes its store.
func (c *Catalog) Close() {
	c.App.Close()
	c.Store.Close()
}

// BuildCatalog seeds a catalog through commands (see SeedCommands). Each
// command is dispatched to cqrskit (inline projection) and applied to the
// floor at the same clock time. Afterwards the clock follows real time.
func BuildCatalog(ctx context.Context, sc Scale, seed uint64) (*Catalog, error) {
	clk := &Clock{}
	st := store.NewMemory(store.WithClock(clk.Now))
	app, err := catalog.Open(ctx, st, st, catalog.Config{})
	if err != nil {
		st.Close()
		return nil, err
	}
	c := &Catalog{
		Scale: sc, Clock: clk, Store: st, App: app, Floor: NewFloor(clk.Now),
		IDs: make([]string, sc.Products), Owners: make([]string, sc.Products),
		RefNow: time.Now().Truncate(time.Second),
	}
	for i := range sc.Products {
		c.IDs[i], c.Owners[i] = catalog.ProductID(i), catalog.SellerID(i%sc.Sellers)
	}
	err = SeedCommands(sc, seed, c.RefNow, func(at time.Time, cmd any) error {
		clk.Set(at)
		if _, err := app.Dispatch(ctx, cmd); err != nil {
			return fmt.Errorf("cqrskit %T: %w", cmd, err)
		}
		if err := c.Floor.Dispatch(cmd); err != nil {
			return fmt.Errorf("floor %T: %w", cmd, err)
		}
		return nil
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	clk.Real()
	c.SeedHead, _ = st.Head(ctx)
	return c, nil
}

// SeedCommands generates the catalog's commands with the time each is
// committed at, ending at now: every seller, every product with its
// shipping options and sc.Reviews reviews (spread over days 120 to 100
// before now), then sc.History commands (70% price changes; also stock,
// reviews, shipping, renames, details) spread over the last 100 days. The
// same seed gives the same commands.
func SeedCommands(sc Scale, seed uint64, now time.Time, fn func(at time.Time, cmd any) error) error {
	gen := catalog.NewGen(seed, sc.Sellers, sc.Products)
	base := now.Add(-120 * day)
	nSeed := sc.Sellers + sc.Products*(2+sc.Reviews)
	step := 20 * day / time.Duration(nSeed)
	at := base
	emit := func(cmd any) error {
		at = at.Add(step)
		return fn(at, cmd)
	}
	for i := range sc.Sellers {
		if err := emit(gen.RegisterSeller(i)); err != nil {
			return err
		}
	}
	for i := range sc.Products {
		if err := emit(gen.ListProduct(i)); err != nil {
			return err
		}
		if err := emit(gen.Shipping(i)); err != nil {
			return err
		}
		for range sc.Reviews {
			if err := emit(gen.Review(i)); err != nil {
				return err
			}
		}
	}
	rnd := rand.New(rand.NewPCG(seed, seed+1))
	at = base.Add(20 * day)
	if sc.History > 0 {
		step = (100*day - time.Minute) / time.Duration(sc.History)
	}
	for k := range sc.History {
		i := rnd.IntN(sc.Products)
		id, owner := catalog.ProductID(i), gen.OwnerOf(i)
		var cmd any
		switch r := rnd.IntN(100); {
		case r < 70:
			cmd = catalog.UpdatePrice{ProductID: id, SellerID: owner, PriceCents: int64(100 + rnd.IntN(100_000))}
		case r < 85:
			cmd = catalog.UpdateStock{ProductID: id, SellerID: owner, Stock: rnd.IntN(20)}
		case r < 93:
			cmd = gen.Review(i)
		case r < 98:
			cmd = gen.Shipping(i)
		case r < 99:
			s := rnd.IntN(sc.Sellers)
			cmd = catalog.RenameSeller{SellerID: catalog.SellerID(s), Name: fmt.Sprintf("Seller %d (%d)", s, k)}
		default:
			cmd = catalog.UpdateDetails{ProductID: id, SellerID: owner, Title: fmt.Sprintf("Product %d v%d", i, k), Description: "Updated."}
		}
		if err := emit(cmd); err != nil {
			return err
		}
	}
	return nil
}

// synthetic generates a catalog-shaped event stream without commands, for
// read models built by feeding a projector directly and for logs appended
// in bulk: sellers, then each product listed with shipping options and
// `reviews` reviews; then, until total events (if total is larger), a mix of
// price changes (60%), stock changes (20%) and reviews (20%). Event k is
// stamped start + k seconds.
type synthetic struct {
	products, sellers, reviews, total int
	start                             time.Time
	ids                               []string
	versions                          []uint64
	authors                           []string
	rnd                               *rand.Rand
	k                                 int
	nReviews                          int
}

func newSynthetic(products, reviews, total int, start time.Time) *synthetic {
	s := &synthetic{
		products: products, sellers: max(products/100, 1), reviews: reviews, total: total, start: start,
		ids: make([]string, products), versions: make([]uint64, products), authors: make([]string, 1000),
		rnd: rand.New(rand.NewPCG(7, 11)),
	}
	for i := range s.ids {
		s.ids[i] = catalog.ProductID(i)
	}
	for i := range s.authors {
		s.authors[i] = fmt.Sprintf("user-%d", i)
	}
	return s
}

// Count returns the number of events run will emit.
func (s *synthetic) Count() int {
	return max(s.total, s.sellers+s.products*(2+s.reviews))
}

var methods = []string{"standard", "express", "overnight", "pickup"}

// run calls emit for every event in order.
func (s *synthetic) run(emit func(stream string, version uint64, at time.Time, e event.Event) error) error {
	ev := func(i int, e event.Event) error {
		s.k++
		stream := "seller/" + catalog.SellerID(i)
		var ver uint64 = 1
		if _, isSeller := e.(catalog.SellerRegistered); !isSeller {
			s.versions[i]++
			stream, ver = "product/"+s.ids[i], s.versions[i]
		}
		return emit(stream, ver, s.start.Add(time.Duration(s.k)*time.Second), e)
	}
	for i := range s.sellers {
		if err := ev(i, catalog.SellerRegistered{SellerID: catalog.SellerID(i), Name: fmt.Sprintf("Seller %d", i), Rating: 4}); err != nil {
			return err
		}
	}
	review := func(i int) error {
		s.nReviews++
		return ev(i, catalog.ReviewSubmitted{
			ReviewID: fmt.Sprintf("r-%d", s.nReviews), ProductID: s.ids[i],
			Author: s.authors[s.rnd.IntN(len(s.authors))], Rating: 1 + s.rnd.IntN(5), Text: "Worked as described.",
		})
	}
	for i := range s.products {
		if err := ev(i, catalog.ProductListed{
			ProductID: s.ids[i], SellerID: catalog.SellerID(i % s.sellers), Title: fmt.Sprintf("Product %d", i),
			Description: "A fine product.", PriceCents: int64(100 + s.rnd.IntN(100_000)), Stock: s.rnd.IntN(20),
		}); err != nil {
			return err
		}
		n := 1 + s.rnd.IntN(3)
		opts := make([]catalog.ShippingOption, 0, n)
		for _, m := range s.rnd.Perm(len(methods))[:n] {
			opts = append(opts, catalog.ShippingOption{Method: methods[m], PriceCents: int64(s.rnd.IntN(2000)), Days: 1 + s.rnd.IntN(7)})
		}
		if err := ev(i, catalog.ShippingSet{ProductID: s.ids[i], Options: opts}); err != nil {
			return err
		}
		for range s.reviews {
			if err := review(i); err != nil {
				return err
			}
		}
	}
	for s.k < s.total {
		i := s.rnd.IntN(s.products)
		var err error
		switch r := s.rnd.IntN(10); {
		case r < 6:
			err = ev(i, catalog.PriceChanged{ProductID: s.ids[i], NewCents: int64(100 + s.rnd.IntN(100_000))})
		case r < 8:
			err = ev(i, catalog.StockChanged{ProductID: s.ids[i], Stock: s.rnd.IntN(20)})
		default:
			err = review(i)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// applyFloor applies a catalog event to a floor view, as the floor's write
// side would have.
func applyFloor(v *FloorView, e event.Event, at time.Time) {
	switch e := e.(type) {
	case catalog.SellerRegistered:
		v.SellerRegistered(FloorSellerRegistered{SellerID: e.SellerID, Name: e.Name, Rating: e.Rating})
	case catalog.ProductListed:
		v.ProductListed(FloorProductListed{ProductID: e.ProductID, SellerID: e.SellerID, Title: e.Title, Description: e.Description, PriceCents: e.PriceCents, Stock: e.Stock, At: at})
	case catalog.ShippingSet:
		v.ShippingSet(FloorShippingSet{ProductID: e.ProductID, Options: e.Options, At: at})
	case catalog.ReviewSubmitted:
		v.ReviewSubmitted(FloorReviewSubmitted{ReviewID: e.ReviewID, ProductID: e.ProductID, Author: e.Author, Rating: e.Rating, Text: e.Text, At: at})
	case catalog.PriceChanged:
		v.PriceChanged(FloorPriceChanged{ProductID: e.ProductID, OldCents: e.OldCents, NewCents: e.NewCents, At: at})
	case catalog.StockChanged:
		v.StockChanged(FloorStockChanged{ProductID: e.ProductID, Stock: e.Stock, At: at})
	}
}

// Sweep is a read model of n products built by feeding events straight into
// the projector (and the floor view), without commands: the way the size
// sweep of Query/TopRated10 gets 1M products in reasonable time.
type Sweep struct {
	N     int
	Views *catalog.Views
	Floor *FloorView
}

// BuildSweep builds the views of n products with 3 reviews each (the
// minimum to be ranked), and the floor's views of the same events.
func BuildSweep(ctx context.Context, n int) (*Sweep, error) {
	sw := &Sweep{N: n, Views: catalog.NewViews(), Floor: NewFloorView()}
	syn := newSynthetic(n, catalog.TopRatedMinReviews, 0, time.Now().Add(-30*day))
	pos := event.Position(0)
	err := syn.run(func(stream string, ver uint64, at time.Time, e event.Event) error {
		pos++
		applyFloor(sw.Floor, e, at)
		return sw.Views.Handle(ctx, event.Record{Type: e.EventType(), Stream: stream, Version: ver, Position: pos, Time: at, Data: e})
	})
	return sw, err
}

// BuildLog appends a synthetic catalog of products to a new store.Memory
// until it holds total events, 1,000 events per unit of work.
func BuildLog(ctx context.Context, products, total int) (*store.Memory, error) {
	clk := &Clock{}
	st := store.NewMemory(store.WithClock(clk.Now))
	syn := newSynthetic(products, 5, total, time.Now().Add(-100*day))
	type pending struct {
		stream string
		e      event.Event
	}
	batch := make([]pending, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := st.Update(ctx, func(tx store.Tx) error {
			for _, p := range batch {
				tx.Record(p.stream, p.e)
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	err := syn.run(func(stream string, _ uint64, at time.Time, e event.Event) error {
		if len(batch) == 0 {
			clk.Set(at)
		}
		batch = append(batch, pending{stream, e})
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}
