package bench

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/examples/catalog"
)

// TestFloorHistoryKeepsHeldViews checks that the floor's product view
// treats History as catalog.Views does: a price change appends past the
// end of the array a reader's view sees (or copies it when full), never
// into what the reader sees, and the views handed out are clipped, so
// that an append of the reader's copies instead of writing into the
// array the floor extends.
func TestFloorHistoryKeepsHeldViews(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFloor(func() time.Time { return at })
	for _, cmd := range []any{
		catalog.RegisterSeller{SellerID: "s-0", Name: "Seller 0", Rating: 4},
		catalog.ListProduct{ProductID: "p-0", SellerID: "s-0", Title: "P", Description: "D", PriceCents: 100, Stock: 1},
	} {
		if err := f.Dispatch(cmd); err != nil {
			t.Fatal(err)
		}
	}
	type heldView struct {
		v    FloorProduct
		want []catalog.PricePoint
	}
	var held []heldView
	for i := range 200 {
		v, _ := f.View.Product("p-0")
		if cap(v.History) != len(v.History) {
			t.Fatalf("Product handed out a History with room past its end: len %d, cap %d", len(v.History), cap(v.History))
		}
		mine := append(v.History, catalog.PricePoint{Cents: -1})
		mine[len(mine)-1].Cents = -2
		held = append(held, heldView{v, slices.Clone(v.History)})
		at = at.Add(time.Hour)
		if err := f.UpdatePrice(catalog.UpdatePrice{ProductID: "p-0", SellerID: "s-0", PriceCents: int64(200 + i)}); err != nil {
			t.Fatal(err)
		}
		for j, h := range held {
			if !slices.Equal(h.v.History, h.want) {
				t.Fatalf("price change %d changed the History of the view read before change %d: %v, was %v", i, j, h.v.History, h.want)
			}
		}
		v, _ = f.View.Product("p-0")
		if len(v.History) != min(i+2, maxHistory) || v.History[len(v.History)-1].Cents != int64(200+i) {
			t.Fatalf("History after %d changes: %v", i+1, v.History)
		}
	}
}

// TestFloorPublishesSnapshots checks that the floor's view publishes a new
// immutable snapshot per change, as catalog.Views does: the product view a
// reader took before a change is left exactly as it was.
func TestFloorPublishesSnapshots(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFloor(func() time.Time { return at })
	for _, cmd := range []any{
		catalog.RegisterSeller{SellerID: "s-0", Name: "Seller 0", Rating: 4},
		catalog.ListProduct{ProductID: "p-0", SellerID: "s-0", Title: "P", Description: "D", PriceCents: 100, Stock: 1},
	} {
		if err := f.Dispatch(cmd); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range []any{
		catalog.UpdatePrice{ProductID: "p-0", SellerID: "s-0", PriceCents: 90},
		catalog.SubmitReview{ReviewID: "r-0", ProductID: "p-0", Author: "a", Rating: 5, Text: "t"},
		catalog.UpdateStock{ProductID: "p-0", SellerID: "s-0", Stock: 0},
		catalog.UpdateDetails{ProductID: "p-0", SellerID: "s-0", Title: "Q", Description: "E"},
		catalog.RenameSeller{SellerID: "s-0", Name: "Seller Zero"},
		catalog.SetShipping{ProductID: "p-0", SellerID: "s-0", Options: []catalog.ShippingOption{{Method: "post", PriceCents: 1, Days: 2}}},
	} {
		f.View.mu.RLock()
		held := f.View.products["p-0"]
		f.View.mu.RUnlock()
		before := *held
		at = at.Add(time.Hour)
		if err := f.Dispatch(cmd); err != nil {
			t.Fatal(err)
		}
		f.View.mu.RLock()
		now := f.View.products["p-0"]
		f.View.mu.RUnlock()
		if now == held {
			t.Fatalf("change %d (%T) did not publish a new snapshot", i, cmd)
		}
		if !reflect.DeepEqual(*held, before) {
			t.Fatalf("change %d (%T) modified the snapshot a reader holds", i, cmd)
		}
	}
}
