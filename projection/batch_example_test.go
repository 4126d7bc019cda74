package projection_test

import (
	"context"
	"fmt"
	"maps"
	"sync/atomic"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// totals is a read model that readers load without a lock: an immutable
// map behind an atomic pointer. Handle copies the map for every event;
// HandleBatch copies it once per batch.
type totals struct {
	cur       atomic.Pointer[map[string]int]
	published int // snapshots stored (only the projector's goroutine writes it)
}

var _ projection.BatchHandler = (*totals)(nil)

func newTotals() *totals {
	t := &totals{}
	t.cur.Store(&map[string]int{})
	return t
}

func (t *totals) Name() string { return "totals" }

func (t *totals) Handle(ctx context.Context, rec event.Record) error {
	_, err := t.HandleBatch(ctx, []event.Record{rec})
	return err
}

// HandleBatch applies recs to a private copy and publishes it once. It
// never fails part way; a projector that can would publish what it applied
// and return how many records that was, with the error.
func (t *totals) HandleBatch(_ context.Context, recs []event.Record) (int, error) {
	next := maps.Clone(*t.cur.Load())
	for _, rec := range recs {
		if e, ok := rec.Data.(Restocked); ok {
			next[e.SKU] += e.Qty
		}
	}
	t.cur.Store(&next)
	t.published++
	return len(recs), nil
}

func (t *totals) Units(sku string) int { return (*t.cur.Load())[sku] }

// A projector that implements BatchHandler catches up in batches of up to
// WithBatchSize records: here 1,000 events make 4 snapshots, not 1,000.
func ExampleBatchHandler() {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()
	for i := range 1000 {
		if _, err := st.Update(ctx, func(tx store.Tx) error {
			tx.Record("product/p-1", Restocked{SKU: "p-1", Qty: i % 3})
			return nil
		}); err != nil {
			fmt.Println(err)
			return
		}
	}
	head, _ := st.Head(ctx)

	r := projection.NewRunner(st, projection.WithBatchSize(256))
	view := newTotals()
	if err := r.Add(view, projection.AsAsync()); err != nil {
		fmt.Println(err)
		return
	}
	if err := r.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	if err := r.WaitFor(ctx, "totals", head); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("p-1:", view.Units("p-1"))
	fmt.Println("snapshots published:", view.published)
	// Output:
	// p-1: 999
	// snapshots published: 4
}
