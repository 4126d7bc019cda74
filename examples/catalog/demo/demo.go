package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// Clock is the commit clock the demo moves, so that price history spans 90
// days. Pass its Now to the store (store.WithClock, pgstore.WithClock).
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now is the demo's "today" minus whatever the demo is replaying.
var Now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// NewClock returns a clock set 100 days before Now.
func NewClock() *Clock { return &Clock{now: Now.Add(-100 * 24 * time.Hour)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Set moves the clock.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// Run prints the demo to w. st and lg are the store and its log (an empty
// store: the demo lists its own products), clk the clock the store stamps
// commits with, and nProducts the catalog size to seed.
func Run(ctx context.Context, w io.Writer, st store.Store, lg store.Log, clk *Clock, nProducts int) error {
	now := Now
	app, err := catalog.Open(ctx, st, lg, catalog.Config{})
	if err != nil {
		return err
	}
	defer app.Close()
	// A second copy of the views follows the same log asynchronously, for
	// the read-your-writes section; the closing status lists it too.
	async := asyncViews{catalog.NewViews()}
	asyncRunner := projection.NewRunner(lg)
	if err := asyncRunner.Add(async, projection.AsAsync()); err != nil {
		return err
	}
	if err := asyncRunner.Start(ctx); err != nil {
		return err
	}
	defer asyncRunner.Close()

	section(w, "Seeding")
	gen := catalog.NewGen(42, max(nProducts/10, 1), nProducts)
	start := time.Now()
	for _, cmd := range gen.Seed(5) {
		if _, err := app.Dispatch(ctx, cmd); err != nil {
			return fmt.Errorf("seed %s: %w", typeName(cmd), err)
		}
	}
	head, _ := lg.Head(ctx)
	fmt.Fprintf(w, "%d sellers, %d products, %d events in %v\n", gen.Sellers, gen.Products, head, time.Since(start).Round(time.Millisecond))

	section(w, "A product's price over 90 days")
	p1 := catalog.ProductID(1)
	owner := gen.OwnerOf(1)
	for _, step := range []struct {
		daysAgo int
		cents   int64
	}{{95, 24_900}, {60, 22_900}, {20, 19_900}, {1, 21_500}} {
		clk.Set(now.Add(-time.Duration(step.daysAgo) * 24 * time.Hour))
		if _, err := app.Dispatch(ctx, catalog.UpdatePrice{ProductID: p1, SellerID: owner, PriceCents: step.cents}); err != nil {
			return err
		}
		fmt.Fprintf(w, "%3d days ago: UpdatePrice %s -> %s\n", step.daysAgo, p1, money(step.cents))
	}
	clk.Set(now)

	section(w, "Commands that are rejected (nothing is written, no event)")
	before, _ := lg.Head(ctx)
	v1, _ := app.Views.Product(p1)
	for _, cmd := range []any{
		catalog.SubmitReview{ReviewID: "r-bad", ProductID: p1, Author: "ann", Rating: 9},
		catalog.UpdatePrice{ProductID: p1, SellerID: owner, PriceCents: 0},
		catalog.ListProduct{ProductID: "p-new", SellerID: owner, Title: "Kettle \xff", Description: "nul\x00", PriceCents: 100},
		catalog.UpdatePrice{ProductID: p1, SellerID: "s-intruder", PriceCents: 100},
		catalog.SubmitReview{ReviewID: "r-x", ProductID: "p-missing", Author: "bob", Rating: 4},
		catalog.ListProduct{ProductID: p1, SellerID: owner, Title: "Dup", PriceCents: 100},
		catalog.ReserveStock{ProductID: p1, Quantity: v1.Stock + 1},
		catalog.UpdateStock{ProductID: p1, SellerID: owner, Stock: 1, ExpectedVersion: v1.Version - 1},
		struct{ Name string }{"unregistered command"},
	} {
		_, err := app.Dispatch(ctx, cmd)
		fmt.Fprintf(w, "%-14s -> %s\n", typeName(cmd), Describe(err))
	}
	after, _ := lg.Head(ctx)
	fmt.Fprintf(w, "log head before %v, after %v: no event was written\n", before, after)

	section(w, "Stock: relative changes and optimistic concurrency")
	if err := stock(ctx, w, app, gen); err != nil {
		return err
	}

	section(w, "Reviews and a seller rename")
	for i, r := range []int{5, 4, 5} {
		clk.Set(now.Add(-time.Duration(3-i) * time.Hour))
		cmd := catalog.SubmitReview{ReviewID: fmt.Sprintf("demo-%d", i), ProductID: p1, Author: []string{"ann", "bob", "cy"}[i], Rating: r, Text: "Great value."}
		if _, err := app.Dispatch(ctx, cmd); err != nil {
			return err
		}
	}
	clk.Set(now)
	res, err := app.Dispatch(ctx, catalog.RenameSeller{SellerID: owner, Name: "Acme Outlet"})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "RenameSeller %s -> token %v; products of the seller now show: ", owner, res.Position)
	for _, id := range app.Views.BySeller(owner, nil)[:3] {
		v, _ := app.Views.Product(id)
		fmt.Fprintf(w, "%s=%q ", id, v.SellerName)
	}
	fmt.Fprintln(w)

	section(w, "Product view (one lookup)")
	v, _ := app.Views.Product(p1)
	printProduct(w, v, now, app.Trending.IsTrending(p1, now))

	section(w, "Top rated (at least 3 reviews)")
	for i, r := range app.Views.TopRated(5, nil) {
		pv, _ := app.Views.Product(r.Key)
		fmt.Fprintf(w, "%d. %-8s %-20s %.1f (%d reviews)\n", i+1, r.Key, pv.Title, pv.AverageRating(), pv.ReviewCount())
	}

	section(w, "In stock, first page of 5")
	page := app.Views.InStock("", 5, nil)
	fmt.Fprintf(w, "%d of %d products in stock; page: %s\n", app.Views.InStockCount(), app.Views.ProductCount(), strings.Join(page, ", "))
	next := app.Views.InStock(page[len(page)-1], 5, nil)
	fmt.Fprintf(w, "next page after %s: %s\n", page[len(page)-1], strings.Join(next, ", "))

	section(w, "Read-your-writes across an async projection")
	if err := readYourWrites(ctx, w, app, asyncRunner, async); err != nil {
		return err
	}

	section(w, "Rebuild from the log without downtime")
	t0 := time.Now()
	if err := app.Runner.Rebuild(ctx, app.Views.Name()); err != nil {
		return err
	}
	rv, _ := app.Views.Product(p1)
	head, _ = lg.Head(ctx)
	fmt.Fprintf(w, "rebuilt %s by replaying the log up to position %v in %v; %s still shows %s, %.1f stars, seller %q\n",
		app.Views.Name(), head, time.Since(t0).Round(time.Millisecond), p1, money(rv.PriceCents), rv.AverageRating(), rv.SellerName)

	section(w, "Status of every projector")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := asyncRunner.WaitFor(wctx, "", head); err != nil {
		return err
	}
	for _, r := range []*projection.Runner{app.Runner, asyncRunner} {
		sts, err := r.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range sts {
			fmt.Fprintf(w, "status %-26s %-6s %-8s checkpoint %v, head %v, behind %d\n", s.Name, s.Mode, s.State, s.Checkpoint, s.Head, s.Behind)
			if s.Err != nil {
				fmt.Fprintf(w, "       %s failed: %v\n", s.Name, s.Err)
			}
		}
	}
	return nil
}

// asyncViews is a copy of the catalog views under its own name, so that
// statuses tell it from the inline one.
type asyncViews struct{ *catalog.Views }

// Name implements projection.Projector.
func (asyncViews) Name() string { return "catalog.views (async copy)" }

// stock shows ReserveStock under concurrency, Restock, and an absolute
// UpdateStock guarded by the version read from the view.
func stock(ctx context.Context, w io.Writer, app *catalog.App, gen *catalog.Gen) error {
	p, owner := catalog.ProductID(3), gen.OwnerOf(3)
	v, _ := app.Views.Product(p)
	if _, err := app.Dispatch(ctx, catalog.UpdateStock{ProductID: p, SellerID: owner, Stock: 100, ExpectedVersion: v.Version}); err != nil {
		return err
	}
	v, _ = app.Views.Product(p)
	fmt.Fprintf(w, "UpdateStock %s to 100 at version %d: accepted, now version %d\n", p, v.Version-1, v.Version)
	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = app.Dispatch(ctx, catalog.ReserveStock{ProductID: p, Quantity: 3})
		})
	}
	wg.Wait()
	ok, rejected := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, command.ErrRejected):
			rejected++
		default:
			return err
		}
	}
	after, _ := app.Views.Product(p)
	fmt.Fprintf(w, "%d concurrent ReserveStock of 3: %d accepted, %d rejected (insufficient stock); stock 100 -> %d\n", n, ok, rejected, after.Stock)
	if _, err := app.Dispatch(ctx, catalog.Restock{ProductID: p, SellerID: owner, Quantity: 50}); err != nil {
		return err
	}
	restocked, _ := app.Views.Product(p)
	fmt.Fprintf(w, "Restock %s by 50: stock %d\n", p, restocked.Stock)
	_, err := app.Dispatch(ctx, catalog.UpdateStock{ProductID: p, SellerID: owner, Stock: 0, ExpectedVersion: v.Version})
	fmt.Fprintf(w, "UpdateStock %s to 0 at the version read before the reservations (%d): %s\n", p, v.Version, Describe(err))
	return nil
}

// readYourWrites shows the token round trip with an async projector: a
// second product view follows the same log on its own goroutine; the
// dispatch returns a token, which is printed (as it would be sent in a
// header), parsed back and waited for before the read.
func readYourWrites(ctx context.Context, w io.Writer, app *catalog.App, runner *projection.Runner, async asyncViews) error {
	p := catalog.ProductID(2)
	v, _ := app.Views.Product(p)
	res, err := app.Dispatch(ctx, catalog.UpdatePrice{ProductID: p, SellerID: v.SellerID, PriceCents: 1234})
	if err != nil {
		return err
	}
	header := res.Position.String() // e.g. X-Consistency-Token
	tok, err := event.ParsePosition(header)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := runner.WaitFor(wctx, "", tok); err != nil {
		return err
	}
	av, _ := async.Product(p)
	fmt.Fprintf(w, "UpdatePrice %s returned token %q; after WaitFor the async view shows %s\n", p, header, money(av.PriceCents))
	return nil
}

func printProduct(w io.Writer, v catalog.ProductView, now time.Time, trending bool) {
	fmt.Fprintf(w, "%s  %q by %s (seller rating %.1f)\n", v.ID, v.Title, v.SellerName, v.SellerRating)
	fmt.Fprintf(w, "price %s, stock %d, in stock %v, trending %v\n", money(v.PriceCents), v.Stock, v.InStock, trending)
	if v.PriceDropped {
		fmt.Fprintf(w, "price dropped from %s\n", money(v.PreviousPriceCents))
	} else {
		fmt.Fprintf(w, "last change raised the price from %s\n", money(v.PreviousPriceCents))
	}
	for _, d := range []int{30, 90} {
		if p, ok := v.PriceDaysAgo(now, d); ok {
			fmt.Fprintf(w, "price %d days ago: %s\n", d, money(p))
		}
	}
	fmt.Fprintf(w, "rating %.1f from %d reviews; latest:\n", v.AverageRating(), v.ReviewCount())
	for r := range v.Recent.All() {
		fmt.Fprintf(w, "  %d* by %-8s %q\n", r.Rating, r.Author, r.Text)
	}
	fmt.Fprintf(w, "shipping: %s\n", strings.Join(v.ShippingMethods(), ", "))
}

// Describe turns a Dispatch error into a sentence for people: validation
// errors list each field and what is wrong with it, rejections give their
// code and message, and the other kinds say what happened. It returns
// "accepted" for nil.
func Describe(err error) string {
	var (
		ve  *command.ValidationError
		re  *command.RejectedError
		fe  *command.ForbiddenError
		snf *store.NotFoundError
		ae  *store.AlreadyExistsError
		se  *command.StaleError
		nh  *command.NoHandlerError
		ac  *command.AfterCommitError
	)
	switch {
	case err == nil:
		return "accepted"
	case errors.As(err, &ac):
		return fmt.Sprintf("committed at position %v, but a read model failed to update: %v", ac.Position, ac.Err)
	case errors.As(err, &ve):
		parts := make([]string, len(ve.Fields))
		for i, f := range ve.Fields {
			parts[i] = f.Field + " " + f.Message
		}
		return "invalid: " + strings.Join(parts, "; ")
	case errors.As(err, &re):
		return fmt.Sprintf("rejected (%s): %s", re.Code, re.Message)
	case errors.As(err, &fe):
		return "forbidden: " + fe.Reason
	case errors.As(err, &snf):
		return fmt.Sprintf("not found: %s %q does not exist", snf.What, snf.Key)
	case errors.As(err, &ae):
		return fmt.Sprintf("already exists: %s already has %q", ae.Table, ae.Key)
	case errors.As(err, &se):
		return fmt.Sprintf("conflict: %s changed since version %d (it is at %d now); read it again", se.Stream, se.Expected, se.Actual)
	case errors.Is(err, store.ErrConflict):
		return "conflict: a concurrent change won; try again"
	case errors.As(err, &nh):
		return "no handler: nothing handles a " + nh.Type
	}
	return "error: " + err.Error()
}

func typeName(v any) string {
	s := fmt.Sprintf("%T", v)
	if i := strings.LastIndexByte(s, '.'); i >= 0 && !strings.HasPrefix(s, "struct") {
		s = s[i+1:]
	}
	return s
}

func section(w io.Writer, title string) { fmt.Fprintf(w, "\n== %s ==\n", title) }

func money(cents int64) string { return fmt.Sprintf("$%d.%02d", cents/100, cents%100) }
