package natsbus_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/event/natsbus"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// snapshot is everything the catalog's views answer, comparably.
type snapshot struct {
	Products map[string]catalog.ProductView
	Top      []catalog.Rated
	InStock  []string
	BySeller map[string][]string
}

func snap(v *catalog.Views, sellers int) snapshot {
	s := snapshot{Products: map[string]catalog.ProductView{}, BySeller: map[string][]string{}}
	v.Each(func(p catalog.ProductView) bool { s.Products[p.ID] = p; return true })
	s.Top = v.TopRated(25, nil)
	s.InStock = v.InStock("", 1<<30, nil)
	for i := range sellers {
		s.BySeller[catalog.SellerID(i)] = v.BySeller(catalog.SellerID(i), nil)
	}
	return s
}

func diff(want, got snapshot) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	ids := make([]string, 0, len(want.Products))
	for id := range want.Products {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !reflect.DeepEqual(want.Products[id], got.Products[id]) {
			return fmt.Sprintf("product %s: writer %+v, replica %+v", id, want.Products[id], got.Products[id])
		}
	}
	return fmt.Sprintf("writer %d products, top %v, in stock %d; replica %d products, top %v, in stock %d",
		len(want.Products), want.Top, len(want.InStock), len(got.Products), got.Top, len(got.InStock))
}

// utcClock stamps commits in UTC without a monotonic reading, which is
// what a decoded time looks like, so views compare with reflect.DeepEqual.
func utcClock() time.Time { return time.Now().UTC().Round(0) }

// Random catalog commands on a writer; the catalog views on a replica fed
// only through JetStream (Relay -> stream -> Follower -> Runner) equal the
// writer's inline views whenever the replica has waited for the writer's
// token: read-your-writes across processes.
func TestReplicaViewsEqualWriter(t *testing.T) {
	_, js := machineNATS(t)
	seeds := []uint64{1, 2, 3}
	n := 1500
	if testing.Short() {
		seeds, n = seeds[:1], 500
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			ctx := context.Background()
			reg := event.NewRegistry()
			if err := catalog.RegisterEvents(reg); err != nil {
				t.Fatal(err)
			}
			_, opts := unique(t, js)
			const sellers, products = 6, 40

			// The writer: inline views on a store.Memory, and the relay.
			m := store.NewMemory(store.WithClock(utcClock))
			app, err := catalog.Open(ctx, m, m, catalog.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			running(t, natsbus.NewRelay(js, m, reg, append(opts, natsbus.WithWindow(32))...))

			// The reader: the same views, fed by the stream.
			f := natsbus.NewFollower(js, reg, opts...)
			defer f.Close()
			replica := catalog.NewViews()
			runner := projection.NewRunner(f, projection.WithCheckpoints(&projection.MemoryCheckpoints{}))
			if err := runner.Add(replica, projection.AsAsync()); err != nil {
				t.Fatal(err)
			}
			if err := runner.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer runner.Close()

			gen := catalog.NewGen(seed, sellers, products)
			cmds := gen.Seed(1)
			for range n {
				cmds = append(cmds, gen.Next())
			}
			checks := 0
			for i, c := range cmds {
				res, err := app.Dispatch(ctx, c)
				if err != nil {
					continue // rejected by design
				}
				if i%97 != 0 && i != len(cmds)-1 {
					continue
				}
				wctx, cancel := context.WithTimeout(ctx, waitLimit)
				err = runner.WaitFor(wctx, "", res.Position)
				cancel()
				if err != nil {
					t.Fatalf("command %d: WaitFor(%v) on the replica: %v", i, res.Position, err)
				}
				if d := diff(snap(app.Views, sellers), snap(replica, sellers)); d != "" {
					t.Fatalf("after command %d (position %v) the replica differs: %s", i, res.Position, d)
				}
				checks++
			}
			head, _ := m.Head(ctx)
			wctx, cancel := context.WithTimeout(ctx, waitLimit)
			defer cancel()
			if err := runner.WaitFor(wctx, "", head); err != nil {
				t.Fatal(err)
			}
			final := snap(app.Views, sellers)
			if len(final.Products) == 0 || len(final.Top) == 0 {
				t.Fatal("the writer's views are empty: the test exercises nothing")
			}
			if d := diff(final, snap(replica, sellers)); d != "" {
				t.Fatalf("at the head (%v) the replica differs: %s", head, d)
			}
			t.Logf("%d commands, head %v, %d read-your-writes checks", len(cmds), head, checks)
		})
	}
}
