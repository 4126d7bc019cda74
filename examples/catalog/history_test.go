package catalog_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// wantHistory is the price history a view must hold after the points in
// all (oldest first): the newest point at or before 90 days before the
// last one, the points after it, and at most the newest 64 of them.
func wantHistory(all []catalog.PricePoint) []catalog.PricePoint {
	cut := all[len(all)-1].At.Add(-90 * 24 * time.Hour)
	start := 0
	for i := len(all) - 1; i >= 0; i-- {
		if !all[i].At.After(cut) {
			start = i
			break
		}
	}
	start = max(start, len(all)-64)
	return all[start:]
}

// historyStep returns how far apart successive price changes are: mostly
// hours, so the 64-point bound trims the history, with jumps of weeks, so
// the 90-day window does.
func historyStep(i int) time.Duration {
	if i%50 == 49 {
		return 40 * 24 * time.Hour
	}
	return time.Hour
}

// holdHistories runs readers that take product views and hold them while
// the projector keeps changing the products: each reader checks that the
// history it got is clipped (an append of its own cannot write into the
// array the projector extends), appends to it, and reads every point of
// every view it holds again and again, for the race detector, checking
// they never change. It returns a function that stops the readers (once,
// however often it is called).
func holdHistories(t *testing.T, views *catalog.Views, ids []string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			type held struct {
				v    catalog.ProductView
				want []catalog.PricePoint
			}
			var hold []held
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				v, ok := views.Product(ids[(i+w)%len(ids)])
				if !ok {
					continue
				}
				if !assert.Equal(t, len(v.History), cap(v.History), "a view handed out must have its history clipped") {
					return
				}
				mine := append(v.History, catalog.PricePoint{Cents: -1})
				mine[len(mine)-1].Cents = -2 // the reader's own array
				hold = append(hold, held{v, slices.Clone(v.History)})
				if len(hold) > 16 {
					hold = hold[1:]
				}
				for _, h := range hold {
					if !assert.Equal(t, h.want, h.v.History, "a held view's history changed") {
						return
					}
				}
			}
		})
	}
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// TestHistorySharedWithLaterVersions: price changes append to the array
// of the published history in place; views readers hold keep their
// points, appends of theirs do not reach the projector's array, and the
// history is the 90-day, 64-point window of every change (inline
// projection, one change at a time).
func TestHistorySharedWithLaterVersions(t *testing.T) {
	app, _, clk := clockedApp(t)
	now := func() time.Time { return time.Unix(0, clk.Load()).UTC() }
	ctx := context.Background()
	ids := []string{"p-0", "p-1"}
	all := map[string][]catalog.PricePoint{}
	for _, id := range ids {
		_, err := app.Dispatch(ctx, catalog.ListProduct{ProductID: id, SellerID: "s", Title: "T", PriceCents: 1000})
		require.NoError(t, err)
		all[id] = []catalog.PricePoint{{At: now(), Cents: 1000}}
	}
	stop := holdHistories(t, app.Views, ids)
	defer stop()
	for i := range 400 {
		clk.Add(int64(historyStep(i)))
		id := ids[i%len(ids)]
		_, err := app.Dispatch(ctx, catalog.UpdatePrice{ProductID: id, SellerID: "s", PriceCents: int64(2000 + i)})
		require.NoError(t, err)
		all[id] = append(all[id], catalog.PricePoint{At: now(), Cents: int64(2000 + i)})
		v, _ := app.Views.Product(id)
		require.Equal(t, wantHistory(all[id]), v.History, "after change %d", i)
	}
	stop()
	// A reader's append to the last view wrote into an array of its own.
	for _, id := range ids {
		v, _ := app.Views.Product(id)
		require.Equal(t, wantHistory(all[id]), v.History)
	}
}

// TestHistoryBatchCatchUpWithHeldViews: a runner catches views up in
// batches, whose stage extends the published histories in place, while
// readers hold earlier versions; the result equals the inline views.
func TestHistoryBatchCatchUpWithHeldViews(t *testing.T) {
	app, st, clk := clockedApp(t)
	ctx := context.Background()
	ids := []string{"p-0", "p-1", "p-2"}
	for _, id := range ids {
		_, err := app.Dispatch(ctx, catalog.ListProduct{ProductID: id, SellerID: "s", Title: "T", PriceCents: 1000})
		require.NoError(t, err)
	}
	for i := range 600 {
		clk.Add(int64(historyStep(i)))
		_, err := app.Dispatch(ctx, catalog.UpdatePrice{ProductID: ids[i*7%len(ids)], SellerID: "s", PriceCents: int64(2000 + i)})
		require.NoError(t, err)
	}

	views := catalog.NewViews()
	r := projection.NewRunner(st, projection.WithBatchSize(16))
	require.NoError(t, r.Add(views, projection.AsAsync()))
	stop := holdHistories(t, views, ids)
	defer stop()
	require.NoError(t, r.Start(ctx))
	defer r.Close()
	head, err := st.Head(ctx)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, r.WaitFor(wctx, "", head))
	stop()
	for _, id := range ids {
		want, _ := app.Views.Product(id)
		got, _ := views.Product(id)
		require.Equal(t, want, got, "product %s", id)
	}
}

// TestHistoryAfterFailedBatch: a batch that fails part-way publishes what
// came before the failure, and the records after it are delivered one at
// a time; the stage's appends past the published end leave the views
// readers hold as they were, and the history ends as if no batch had
// failed.
func TestHistoryAfterFailedBatch(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pos := event.Position(0)
	rec := func(typ string, e event.Event, version uint64) event.Record {
		pos++
		return event.Record{Type: typ, Stream: "product/p", Version: version, Position: pos, Time: t0.Add(time.Duration(pos) * time.Hour), Data: e}
	}
	price := func(cents int64, version uint64) event.Record {
		return rec(catalog.PriceChanged{}.EventType(), catalog.PriceChanged{ProductID: "p", NewCents: cents}, version)
	}
	point := func(r event.Record) catalog.PricePoint {
		return catalog.PricePoint{At: r.Time, Cents: r.Data.(catalog.PriceChanged).NewCents}
	}
	views, clean := catalog.NewViews(), catalog.NewViews()
	listed := rec(catalog.ProductListed{}.EventType(), catalog.ProductListed{ProductID: "p", SellerID: "s", Title: "T", PriceCents: 100}, 1)
	require.NoError(t, views.Handle(ctx, listed))
	require.NoError(t, clean.Handle(ctx, listed))
	all := []catalog.PricePoint{{At: listed.Time, Cents: 100}}
	var log []event.Record
	version := uint64(1)
	for round := range 30 {
		v0, _ := views.Product("p")
		was := slices.Clone(v0.History)
		a, b := price(int64(200+round), version+1), price(int64(300+round), version+2)
		// A record whose payload is not the type its name routes to: the
		// batch fails there, after staging the two changes before it.
		bad := rec(catalog.PriceChanged{}.EventType(), catalog.StockChanged{ProductID: "p"}, 0)
		c, d := price(int64(400+round), version+3), price(int64(500+round), version+4)
		version += 4
		n, err := views.HandleBatch(ctx, []event.Record{a, b, bad, c, d})
		require.Error(t, err)
		require.Equal(t, 2, n)
		all = append(all, point(a), point(b))
		v1, _ := views.Product("p")
		require.Equal(t, wantHistory(all), v1.History, "round %d: after the failed batch", round)
		require.Error(t, views.Handle(ctx, bad))
		require.NoError(t, views.Handle(ctx, c))
		require.NoError(t, views.Handle(ctx, d))
		all = append(all, point(c), point(d))
		v2, _ := views.Product("p")
		require.Equal(t, wantHistory(all), v2.History, "round %d: after redelivery", round)
		require.Equal(t, was, v0.History, "round %d: the view held before the batch changed", round)
		require.Equal(t, wantHistory(all[:len(all)-2]), v1.History, "round %d: the view held after the batch changed", round)
		log = append(log, a, b, c, d)
	}
	for _, r := range log {
		require.NoError(t, clean.Handle(ctx, r))
	}
	got, _ := views.Product("p")
	want, _ := clean.Product("p")
	require.Equal(t, want, got)
}

// clockedApp opens a catalog on a memory store whose clock reads the
// returned nanosecond counter (starting 2026-01-01 UTC), with seller "s"
// registered; both are closed when the test ends.
func clockedApp(t *testing.T) (*catalog.App, *store.Memory, *atomic.Int64) {
	t.Helper()
	clk := new(atomic.Int64)
	clk.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	st := store.NewMemory(store.WithClock(func() time.Time { return time.Unix(0, clk.Load()).UTC() }))
	t.Cleanup(func() { st.Close() })
	app, err := catalog.Open(context.Background(), st, st, catalog.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	_, err = app.Dispatch(context.Background(), catalog.RegisterSeller{SellerID: "s", Name: "S"})
	require.NoError(t, err)
	return app, st, clk
}
