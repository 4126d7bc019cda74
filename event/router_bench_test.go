package event_test

import (
	"context"
	"testing"

	"github.com/cqrskit/cqrs/event"
)

type ev0 struct{ N int }

func (ev0) EventType() string { return "bench.ProductListed" }

type ev1 struct{ N int }

func (ev1) EventType() string { return "bench.PriceChanged" }

type ev2 struct{ N int }

func (ev2) EventType() string { return "bench.StockChanged" }

type ev3 struct{ N int }

func (ev3) EventType() string { return "bench.StockReserved" }

type ev4 struct{ N int }

func (ev4) EventType() string { return "bench.Restocked" }

type ev5 struct{ N int }

func (ev5) EventType() string { return "bench.DetailsChanged" }

type ev6 struct{ N int }

func (ev6) EventType() string { return "bench.ReviewSubmitted" }

type ev7 struct{ N int }

func (ev7) EventType() string { return "bench.ShippingSet" }

type ev8 struct{ N int }

func (ev8) EventType() string { return "bench.SellerRegistered" }

type ev9 struct{ N int }

func (ev9) EventType() string { return "bench.SellerRenamed" }

type ev10 struct{ N int }

func (ev10) EventType() string { return "bench.SellerRated" }

type ev11 struct{ N int }

func (ev11) EventType() string { return "bench.ProductDelisted" }

// BenchmarkRouterHandle routes records of twelve types through a router
// with eleven of them routed, as the catalog's views are (one op is one
// record), the way a projector sees a memory log: records whose Type is
// the string the event's EventType returns.
func BenchmarkRouterHandle(b *testing.B) {
	var r event.Router
	sum := 0

	event.On(&r, func(_ context.Context, _ event.Record, e ev0) error { sum += e.N; return nil })

	event.On(&r, func(_ context.Context, _ event.Record, e ev1) error { sum += e.N; return nil })

	event.On(&r, func(_ context.Context, _ event.Record, e ev2) error { sum += e.N; return nil })

	event.On(&r, func(_ context.Context, _ event.Record, e ev3) error { sum += e.N; return nil })

	event.On(&r, func(_ context.Context, _ event.Record, e ev4) error { sum += e.N; return nil })

	event.On(&r, func(_ context.Context, _ event.Record, e ev5) error { sum += e.N; return nil })

	event.On(&r, func(_ context.Context, _ event.Record, e ev6) error { sum += e.N; return nil })

	event.On(&r, func(_ context.Context, _ event.Record, e ev7) error { sum += e.N; return nil })

	event.On(&r, func(_ context.Context, _ event.Record, e ev8) error { sum += e.N; return nil })

	event.On(&r, func(_ context.Context, _ event.Record, e ev9) error { sum += e.N; return nil })

	event.On(&r, func(_ context.Context, _ event.Record, e ev10) error { sum += e.N; return nil })

	evs := []event.Event{ev0{0}, ev1{1}, ev2{2}, ev3{3}, ev4{4}, ev5{5}, ev6{6}, ev7{7}, ev8{8}, ev9{9}, ev10{10}, ev11{11}}
	recs := make([]event.Record, 0, 64)
	for i := range 64 {
		e := evs[(i*7)%len(evs)] // ev11 is not routed: ignored
		recs = append(recs, event.Record{Type: e.EventType(), Position: event.Position(i + 1), Data: e})
	}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if err := r.Handle(ctx, recs[i&63]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	_ = sum
}
