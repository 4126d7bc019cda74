package cqrs_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func open(t *testing.T, cfg catalog.Config, opts ...store.MemoryOption) (*store.Memory, *catalog.App) {
	t.Helper()
	st := store.NewMemory(opts...)
	app, err := catalog.Open(context.Background(), st, st, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { app.Close(); st.Close() })
	return st, app
}

func mustDispatch(t *testing.T, app *catalog.App, cmds ...any) command.Result {
	t.Helper()
	var res command.Result
	for _, c := range cmds {
		var err error
		res, err = app.Dispatch(context.Background(), c)
		require.NoError(t, err, "%T %+v", c, c)
	}
	return res
}

func TestProductViewAnswersTheJoin(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{now: now.Add(-100 * 24 * time.Hour)}
	_, app := open(t, catalog.Config{}, store.WithClock(clk.Now))
	mustDispatch(t, app,
		catalog.RegisterSeller{SellerID: "s1", Name: "Acme", Rating: 4.5},
		catalog.ListProduct{ProductID: "p1", SellerID: "s1", Title: "Kettle", Description: "Boils.", PriceCents: 5000, Stock: 3},
		catalog.SetShipping{ProductID: "p1", SellerID: "s1", Options: []catalog.ShippingOption{{Method: "standard", PriceCents: 0, Days: 5}, {Method: "express", PriceCents: 900, Days: 1}}},
	)
	for _, step := range []struct {
		daysAgo int
		cents   int64
	}{{80, 4500}, {40, 4000}, {10, 4200}} {
		clk.Set(now.Add(-time.Duration(step.daysAgo) * 24 * time.Hour))
		mustDispatch(t, app, catalog.UpdatePrice{ProductID: "p1", SellerID: "s1", PriceCents: step.cents})
	}
	clk.Set(now.Add(-time.Hour))
	ratings := []int{5, 4, 3, 5, 4, 2, 5}
	for i, r := range ratings {
		clk.Set(now.Add(time.Duration(i-10) * time.Minute))
		mustDispatch(t, app, catalog.SubmitReview{ReviewID: fmt.Sprintf("r%d", i), ProductID: "p1", Author: fmt.Sprintf("u%d", i), Rating: r})
	}
	mustDispatch(t, app, catalog.UpdateStock{ProductID: "p1", SellerID: "s1", Stock: 0})

	v, ok := app.Views.Product("p1")
	require.True(t, ok)
	assert.Equal(t, "Kettle", v.Title)
	assert.Equal(t, "Boils.", v.Description)
	assert.EqualValues(t, 4200, v.PriceCents)
	assert.Equal(t, 0, v.Stock)
	assert.False(t, v.InStock)
	assert.Equal(t, 7, v.ReviewCount())
	assert.Equal(t, 4.0, v.AverageRating()) // 28/7
	recent := v.Recent.Items()
	require.Len(t, recent, 5)
	for i, want := range []string{"r6", "r5", "r4", "r3", "r2"} {
		assert.Equal(t, want, recent[i].ReviewID, "newest first")
	}
	assert.Equal(t, "Acme", v.SellerName)
	assert.Equal(t, 4.5, v.SellerRating)
	assert.Equal(t, []string{"standard", "express"}, v.ShippingMethods())
	p30, ok := v.PriceDaysAgo(now, 30)
	require.True(t, ok)
	assert.EqualValues(t, 4000, p30)
	p90, ok := v.PriceDaysAgo(now, 90)
	require.True(t, ok)
	assert.EqualValues(t, 5000, p90)
	assert.False(t, v.PriceDropped, "last change 4000 -> 4200 raised the price")
	assert.EqualValues(t, 4000, v.PreviousPriceCents)
}

func TestRejectionsLeaveNothingBehind(t *testing.T) {
	st, app := open(t, catalog.Config{})
	mustDispatch(t, app,
		catalog.RegisterSeller{SellerID: "s1", Name: "Acme"},
		catalog.RegisterSeller{SellerID: "s2", Name: "Other"},
		catalog.ListProduct{ProductID: "p1", SellerID: "s1", Title: "Kettle", PriceCents: 5000, Stock: 3},
	)
	ctx := context.Background()
	head, _ := st.Head(ctx)
	before, _ := app.Views.Product("p1")

	cases := []struct {
		cmd  any
		is   error
		want func(t *testing.T, err error)
	}{
		{catalog.SubmitReview{ReviewID: "r1", ProductID: "p1", Author: "a", Rating: 6}, command.ErrValidation, func(t *testing.T, err error) {
			var ve *command.ValidationError
			require.ErrorAs(t, err, &ve)
			msg, ok := ve.Field("Rating")
			assert.True(t, ok)
			assert.Contains(t, msg, "between 1 and 5")
		}},
		{catalog.ListProduct{ProductID: "p2", SellerID: "s1", PriceCents: -5}, command.ErrValidation, func(t *testing.T, err error) {
			var ve *command.ValidationError
			require.ErrorAs(t, err, &ve)
			_, title := ve.Field("Title")
			_, price := ve.Field("PriceCents")
			assert.True(t, title && price, "every invalid field is reported: %v", ve.Fields)
		}},
		{catalog.UpdatePrice{ProductID: "p1", SellerID: "s2", PriceCents: 10}, command.ErrForbidden, nil},
		{catalog.UpdatePrice{ProductID: "nope", SellerID: "s1", PriceCents: 10}, store.ErrNotFound, func(t *testing.T, err error) {
			var nf *store.NotFoundError
			require.ErrorAs(t, err, &nf)
			assert.Equal(t, "product", nf.What)
		}},
		{catalog.ListProduct{ProductID: "p1", SellerID: "s1", Title: "dup", PriceCents: 1}, store.ErrAlreadyExists, func(t *testing.T, err error) {
			var ae *store.AlreadyExistsError
			require.ErrorAs(t, err, &ae)
			assert.NotErrorIs(t, err, command.ErrValidation)
			assert.NotErrorIs(t, err, store.ErrConflict)
		}},
		{catalog.ReserveStock{ProductID: "p1", Quantity: 4}, command.ErrRejected, func(t *testing.T, err error) {
			var re *command.RejectedError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, catalog.CodeInsufficientStock, re.Code)
		}},
		{catalog.UpdateStock{ProductID: "p1", SellerID: "s1", Stock: 9, ExpectedVersion: 7}, store.ErrConflict, func(t *testing.T, err error) {
			var se *command.StaleError
			require.ErrorAs(t, err, &se)
			assert.EqualValues(t, 1, se.Actual)
		}},
		{catalog.ListProduct{ProductID: "p2", SellerID: "s1", Title: "bad \xff", PriceCents: 1}, command.ErrValidation, nil},
		{catalog.ListProduct{ProductID: "p9", SellerID: "ghost", Title: "x", PriceCents: 1}, store.ErrNotFound, nil},
		{struct{ X int }{1}, nil, func(t *testing.T, err error) {
			var nh *command.NoHandlerError
			require.ErrorAs(t, err, &nh, "a wiring mistake, matching no sentinel")
		}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%T", c.cmd), func(t *testing.T) {
			res, err := app.Dispatch(ctx, c.cmd)
			require.Error(t, err)
			if c.is != nil {
				assert.ErrorIs(t, err, c.is)
			}
			assert.Zero(t, res.Position)
			if c.want != nil {
				c.want(t, err)
			}
			h, _ := st.Head(ctx)
			assert.Equal(t, head, h, "no event")
			after, _ := app.Views.Product("p1")
			assert.Equal(t, before, after, "no view change")
			_, exists := app.Views.Product("p2")
			assert.False(t, exists)
		})
	}
}

// A handler that writes rows and records an event, then fails or panics,
// leaves no row and no event.
func TestUnitOfWorkRollsBackOnErrorAndPanic(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	notes := store.NewTable[string, string](st, "notes")
	bus := command.New(st, command.WithMiddleware(command.Recover()))
	type write struct{ Mode string }
	boom := errors.New("boom")
	command.Register(bus, func(ctx context.Context, tx store.Tx, c write) error {
		if _, err := notes.Put(tx, "k", c.Mode); err != nil {
			return err
		}
		tx.Record("notes/k", noteWritten{Text: c.Mode})
		switch c.Mode {
		case "error":
			return boom
		case "panic":
			panic("handler bug")
		}
		return nil
	})
	ctx := context.Background()
	_, err := bus.Dispatch(ctx, write{Mode: "error"})
	assert.ErrorIs(t, err, boom)
	_, err = bus.Dispatch(ctx, write{Mode: "panic"})
	assert.ErrorIs(t, err, event.ErrPanic)
	head, _ := st.Head(ctx)
	assert.Zero(t, head)
	_, err = st.Update(ctx, func(tx store.Tx) error {
		_, _, err := notes.Get(tx, "k")
		return err
	})
	assert.ErrorIs(t, err, store.ErrNotFound)

	res, err := bus.Dispatch(ctx, write{Mode: "ok"})
	require.NoError(t, err)
	assert.EqualValues(t, 1, res.Position)
}

type noteWritten struct{ Text string }

func (noteWritten) EventType() string { return "test.NoteWritten" }

func TestConcurrentReviewsAreExact(t *testing.T) {
	_, app := open(t, catalog.Config{})
	mustDispatch(t, app,
		catalog.RegisterSeller{SellerID: "s1", Name: "Acme"},
		catalog.ListProduct{ProductID: "p1", SellerID: "s1", Title: "Kettle", PriceCents: 5000, Stock: 3},
	)
	var wg sync.WaitGroup
	sum := 0
	for i := range 100 {
		sum += 1 + i%5
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := app.Dispatch(context.Background(), catalog.SubmitReview{ReviewID: fmt.Sprintf("r%d", i), ProductID: "p1", Author: "u", Rating: 1 + i%5})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	v, _ := app.Views.Product("p1")
	assert.Equal(t, 100, v.ReviewCount())
	assert.InDelta(t, float64(sum)/100, v.Ratings.Mean(), 1e-9)
	assert.Equal(t, 3.0, v.AverageRating())
}

func TestSellerRenameReachesEveryProductView(t *testing.T) {
	_, app := open(t, catalog.Config{})
	mustDispatch(t, app, catalog.RegisterSeller{SellerID: "s1", Name: "Old"}, catalog.RegisterSeller{SellerID: "s2", Name: "Keep"})
	for i := range 50 {
		mustDispatch(t, app, catalog.ListProduct{ProductID: fmt.Sprintf("p%02d", i), SellerID: []string{"s1", "s2"}[i%2], Title: "t", PriceCents: 100})
	}
	mustDispatch(t, app, catalog.RenameSeller{SellerID: "s1", Name: "New"})
	ids := app.Views.BySeller("s1", nil)
	assert.Len(t, ids, 25)
	app.Views.Each(func(v catalog.ProductView) bool {
		if v.SellerID == "s1" {
			assert.Equal(t, "New", v.SellerName, v.ID)
		} else {
			assert.Equal(t, "Keep", v.SellerName, v.ID)
		}
		return true
	})
}

func TestTopRatedAndInStockMatchBruteForce(t *testing.T) {
	_, app := open(t, catalog.Config{})
	gen := catalog.NewGen(3, 20, 300)
	ctx := context.Background()
	for _, c := range gen.Seed(2) {
		mustDispatch(t, app, c)
	}
	for range 3000 {
		app.Dispatch(ctx, gen.Next()) //nolint:errcheck // rejections are part of the mix
	}
	type rated struct {
		id   string
		mean float64
	}
	var all []rated
	var inStock []string
	app.Views.Each(func(v catalog.ProductView) bool {
		if v.ReviewCount() >= catalog.TopRatedMinReviews {
			all = append(all, rated{v.ID, v.Ratings.Mean()})
		}
		if v.InStock {
			inStock = append(inStock, v.ID)
		}
		return true
	})
	sort.Slice(all, func(i, j int) bool {
		if all[i].mean != all[j].mean {
			return all[i].mean > all[j].mean
		}
		return all[i].id < all[j].id
	})
	top := app.Views.TopRated(10, nil)
	require.Len(t, top, 10)
	for i := range top {
		assert.Equal(t, all[i].id, top[i].Key)
		assert.True(t, math.Abs(all[i].mean-top[i].Score) < 1e-9)
	}
	sort.Strings(inStock)
	var paged []string
	cursor := ""
	for {
		page := app.Views.InStock(cursor, 7, nil)
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		cursor = page[len(page)-1]
	}
	assert.Equal(t, inStock, paged)
}

// An inline projector is the synchronous in-process event bus: a Router
// added with projection.Named gets committed events, typed, in commit order,
// with the dispatching context's metadata, before Dispatch returns.
func TestInlineProjectorDeliversInCommitOrderWithMetadata(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	var mu sync.Mutex
	var got []event.Record
	var subscriber event.Router
	event.On(&subscriber, func(_ context.Context, rec event.Record, e catalog.ReviewSubmitted) error {
		mu.Lock()
		got = append(got, rec)
		mu.Unlock()
		return nil
	})
	runner := projection.NewRunner(st)
	require.NoError(t, runner.Add(projection.Named("reviews", &subscriber)))
	require.NoError(t, runner.Start(context.Background()))
	defer runner.Close()
	cmds := command.New(st, command.WithSyncer(runner))
	catalog.NewDomain(st).Register(cmds)
	ctx := event.WithMetadata(context.Background(), event.Metadata{CorrelationID: "req-1", UserID: "u-9"})
	_, err := cmds.Dispatch(ctx, catalog.RegisterSeller{SellerID: "s", Name: "S"})
	require.NoError(t, err)
	_, err = cmds.Dispatch(ctx, catalog.ListProduct{ProductID: "p", SellerID: "s", Title: "T", PriceCents: 1})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cmds.Dispatch(ctx, catalog.SubmitReview{ReviewID: fmt.Sprint(i), ProductID: "p", Author: "a", Rating: 5})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Len(t, got, 40)
	for i, rec := range got {
		assert.Equal(t, "req-1", rec.Metadata.CorrelationID)
		assert.Equal(t, "u-9", rec.Metadata.UserID)
		assert.EqualValues(t, i+2, rec.Version, "stream versions in order")
		if i > 0 {
			assert.Greater(t, rec.Position, got[i-1].Position)
		}
	}
}

// deliveries counts, per record position, the tries a handler got and the
// ones it applied; it fails each record's first failFirst tries, and every
// try while failing is set.
type deliveries struct {
	mu        sync.Mutex
	failFirst int
	failing   bool // fail every try while set
	tries     map[event.Position]int
	applied   map[event.Position]int
}

func (d *deliveries) Handle(_ context.Context, rec event.Record) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tries == nil {
		d.tries, d.applied = map[event.Position]int{}, map[event.Position]int{}
	}
	d.tries[rec.Position]++
	if d.failing || d.tries[rec.Position] <= d.failFirst {
		return fmt.Errorf("projector down at %v", rec.Position)
	}
	d.applied[rec.Position]++
	return nil
}

func (d *deliveries) counts(pos event.Position) (tries, applied int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tries[pos], d.applied[pos]
}

func (d *deliveries) setFailing(on bool) {
	d.mu.Lock()
	d.failing = on
	d.mu.Unlock()
}

// The guarantee of issue 8, now that event.Bus is gone: two inline
// projectors on one runner are delivered to independently, so while one
// fails and is retried (within WithRetry, or later through Resume after it
// stopped) the healthy one sees each record exactly once.
func TestHealthyInlineProjectorSeesEachRecordOnceWhileAnotherIsRetried(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	healthy := &deliveries{}
	flaky := &deliveries{failFirst: 2}
	runner := projection.NewRunner(st)
	require.NoError(t, runner.Add(projection.Named("healthy", healthy)))
	require.NoError(t, runner.Add(projection.Named("flaky", flaky), projection.WithRetry(3, nil)))
	ctx := context.Background()
	require.NoError(t, runner.Start(ctx))
	defer runner.Close()
	cmds := command.New(st, command.WithSyncer(runner))
	catalog.NewDomain(st).Register(cmds)

	// Each record fails twice on flaky and succeeds on its third try.
	var positions []event.Position
	for i := range 5 {
		res, err := cmds.Dispatch(ctx, catalog.RegisterSeller{SellerID: fmt.Sprint("s", i), Name: "S"})
		require.NoError(t, err)
		positions = append(positions, res.Position)
	}
	for _, pos := range positions {
		tries, applied := flaky.counts(pos)
		assert.Equal(t, 3, tries, "flaky was retried at %v", pos)
		assert.Equal(t, 1, applied, "flaky applied %v once", pos)
		tries, applied = healthy.counts(pos)
		assert.Equal(t, 1, tries, "healthy was delivered %v once", pos)
		assert.Equal(t, 1, applied)
	}

	// Beyond its retries flaky stops (the default policy): the command has
	// committed, healthy has the record, and Dispatch says post-commit work
	// failed.
	flaky.setFailing(true)
	res, err := cmds.Dispatch(ctx, catalog.RegisterSeller{SellerID: "late", Name: "L"})
	require.ErrorIs(t, err, command.ErrAfterCommit)
	require.ErrorIs(t, err, projection.ErrStopped)
	tries, applied := healthy.counts(res.Position)
	assert.Equal(t, [2]int{1, 1}, [2]int{tries, applied})
	tries, applied = flaky.counts(res.Position)
	assert.Equal(t, [2]int{3, 0}, [2]int{tries, applied})

	// A Resume retries flaky alone; healthy is not delivered to again.
	flaky.setFailing(false)
	require.NoError(t, runner.Resume(ctx, "flaky"))
	_, applied = flaky.counts(res.Position)
	assert.Equal(t, 1, applied, "flaky applied the record after Resume")
	tries, applied = healthy.counts(res.Position)
	assert.Equal(t, [2]int{1, 1}, [2]int{tries, applied}, "healthy saw the record once")
	for _, pos := range positions {
		tries, _ := healthy.counts(pos)
		assert.Equal(t, 1, tries, "healthy saw %v once", pos)
	}
}

// A process manager reacts to events with commands. It runs as an async
// projector, so its dispatches do not wait on the delivery they are part of.
func TestProcessManagerDispatchesFromAsyncProjector(t *testing.T) {
	st, app := open(t, catalog.Config{})
	ctx := context.Background()
	var pm event.Router
	event.On(&pm, func(ctx context.Context, _ event.Record, e catalog.SellerRegistered) error {
		if e.Rating == 0 { // new sellers start at 3 stars
			_, err := app.Dispatch(ctx, catalog.RateSeller{SellerID: e.SellerID, Rating: 3})
			return err
		}
		return nil
	})
	runner := projection.NewRunner(st)
	require.NoError(t, runner.Add(projection.Named("onboarding", &pm), projection.AsAsync()))
	require.NoError(t, runner.Start(ctx))
	defer runner.Close()

	res := mustDispatch(t, app, catalog.RegisterSeller{SellerID: "s1", Name: "New"})
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, runner.WaitFor(wctx, "onboarding", res.Position))
	head, _ := st.Head(ctx)
	require.NoError(t, app.WaitFor(wctx, command.Result{Position: head}))
	s, ok := app.Views.Seller("s1")
	require.True(t, ok)
	assert.Equal(t, 3.0, s.Rating)
}
