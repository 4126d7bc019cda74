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

	section(w, "Seeding")
	gen := catalog.NewGen(42, max(nProducts/10, 1), nProducts)
	start := time.Now()
	for _, cmd := range gen.Seed(5) {
		if _, err := app.Dispatch(ctx, cmd); err != nil {
			return fmt.Errorf("seed %T: %w", cmd, err)
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
	for _, cmd := range []any{
		catalog.SubmitReview{ReviewID: "r-bad", ProductID: p1, Author: "ann", Rating: 9},
		catalog.UpdatePrice{ProductID: p1, SellerID: owner, PriceCents: 0},
		catalog.UpdatePrice{ProductID: p1, SellerID: "s-intruder", PriceCents: 100},
		catalog.SubmitReview{ReviewID: "r-x", ProductID: "p-missing", Author: "bob", Rating: 4},
		catalog.ListProduct{ProductID: p1, SellerID: owner, Title: "Dup", PriceCents: 100},
		struct{ Name string }{"unregistered command"},
	} {
		_, err := app.Dispatch(ctx, cmd)
		fmt.Fprintf(w, "%-22s -> %s\n", typeName(cmd), classify(err))
	}
	after, _ := lg.Head(ctx)
	fmt.Fprintf(w, "log head before %v, after %v: no event was written\n", before, after)

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
	if err := readYourWrites(ctx, w, app, lg); err != nil {
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
	sts, _ := app.Runner.Status(ctx)
	for _, s := range sts {
		fmt.Fprintf(w, "status %-17s %-7s %-8s checkpoint %v, head %v, behind %d\n", s.Name, s.Mode, s.State, s.Checkpoint, s.Head, s.Behind)
	}
	return nil
}

// readYourWrites shows the token round trip with an async projector: a
// second product view follows the same log on its own goroutine; the
// dispatch returns a token, which is printed (as it would be sent in a
// header), parsed back and waited for before the read.
func readYourWrites(ctx context.Context, w io.Writer, app *catalog.App, lg store.Log) error {
	async := catalog.NewViews()
	runner := projection.NewRunner(lg)
	if err := runner.Add(async, projection.AsAsync()); err != nil {
		return err
	}
	if err := runner.Start(ctx); err != nil {
		return err
	}
	defer runner.Close()
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

func classify(err error) string {
	var ve *command.ValidationError
	switch {
	case err == nil:
		return "accepted"
	case errors.As(err, &ve):
		return fmt.Sprintf("ErrValidation %v", ve.Fields)
	case errors.Is(err, command.ErrForbidden):
		return "ErrForbidden: " + err.Error()
	case errors.Is(err, command.ErrNotFound):
		return "ErrNotFound: " + err.Error()
	case errors.Is(err, command.ErrNoHandler):
		return "ErrNoHandler: " + err.Error()
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
