package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
)

// otherEvent is an event type the views do not handle.
type otherEvent struct{}

func (otherEvent) EventType() string { return "test.Other" }

// The views route records as an event.Router does, by type name with the
// payload checked against it: a record whose payload is another type than
// its name says is an error, and a record of a type the views do not handle
// is ignored, even when its payload is a catalog event.
func TestViewsRouteByTypeName(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := func(pos uint64, typ string, data event.Event) event.Record {
		return event.Record{Type: typ, Stream: "product/p-1", Version: pos, Position: event.Position(pos), Time: at, Data: data}
	}
	listed := catalog.ProductListed{ProductID: "p-1", SellerID: "s-1", Title: "T", PriceCents: 100, Stock: 1}
	for _, batched := range []bool{false, true} {
		v := catalog.NewViews()
		handle := func(r event.Record) error {
			if batched {
				_, err := v.HandleBatch(ctx, []event.Record{r})
				return err
			}
			return v.Handle(ctx, r)
		}
		require.NoError(t, handle(rec(1, listed.EventType(), listed)))
		// A price change under another type name: ignored.
		require.NoError(t, handle(rec(2, "test.Other", catalog.PriceChanged{ProductID: "p-1", NewCents: 5})))
		// An unhandled type: ignored.
		require.NoError(t, handle(rec(3, "test.Other", otherEvent{})))
		// A payload that is not the type its name says: an error.
		require.Error(t, handle(rec(4, catalog.PriceChanged{}.EventType(), catalog.StockChanged{ProductID: "p-1", Stock: 0})))
		p, ok := v.Product("p-1")
		require.True(t, ok)
		require.Equal(t, int64(100), p.PriceCents, "batched=%v", batched)
		require.Equal(t, 1, p.Stock, "batched=%v", batched)
		require.Equal(t, uint64(1), p.Version, "batched=%v", batched)
		// The real thing goes through.
		require.NoError(t, handle(rec(5, catalog.PriceChanged{}.EventType(), catalog.PriceChanged{ProductID: "p-1", NewCents: 7})))
		p, _ = v.Product("p-1")
		require.Equal(t, int64(7), p.PriceCents, "batched=%v", batched)
	}
}
