package projection_test

import (
	"context"
	"fmt"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/store"
)

type PriceChanged struct {
	SKU   string
	Cents int64
}

func (PriceChanged) EventType() string { return "catalog.price_changed" }

// A View makes a projector over readmodel building blocks rebuildable: give
// it a name, how to make an empty model and how events fold into one.
func ExampleView() {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()

	prices := projection.NewView("prices", readmodel.NewMap[string, int64],
		func(r *event.Router, m *readmodel.Map[string, int64]) {
			event.On(r, func(ctx context.Context, _ event.Record, e PriceChanged) error {
				return m.Put(ctx, e.SKU, e.Cents)
			})
		})

	r := projection.NewRunner(st)
	if err := r.Add(prices, projection.WithVersion(1)); err != nil {
		panic(err)
	}
	if err := r.Start(ctx); err != nil {
		panic(err)
	}
	defer r.Close()

	pos, err := st.Update(ctx, func(tx store.Tx) error {
		tx.Record("product/lamp", PriceChanged{"lamp", 1999})
		tx.Record("product/lamp", PriceChanged{"lamp", 1799})
		return nil
	})
	if err != nil {
		panic(err)
	}
	if err := r.Sync(ctx, pos); err != nil {
		panic(err)
	}
	cents, _ := prices.Load().Load("lamp")
	fmt.Println("live:", cents)

	// Replay the log into a fresh model and swap it in, while the live one
	// keeps serving.
	if err := r.Rebuild(ctx, "prices"); err != nil {
		panic(err)
	}
	cents, _ = prices.Load().Load("lamp")
	fmt.Println("rebuilt:", cents)
	// Output:
	// live: 1799
	// rebuilt: 1799
}
