package bench

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/examples/catalog"
)

// TestFloorHistoryIsCopied checks that a price change gives the floor's
// product view a new History slice, as catalog.Views does, instead of
// appending into the array a reader may still hold.
func TestFloorHistoryIsCopied(t *testing.T) {
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
	for i := range 10 {
		v, _ := f.View.Product("p-0")
		held := v.History[:cap(v.History)]
		before := slices.Clone(held)
		at = at.Add(time.Hour)
		if err := f.UpdatePrice(catalog.UpdatePrice{ProductID: "p-0", SellerID: "s-0", PriceCents: int64(200 + i)}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(held, before) {
			t.Fatalf("price change %d wrote into the History array a reader holds: %v, was %v", i, held, before)
		}
		if v, _ := f.View.Product("p-0"); len(v.History) != i+2 {
			t.Fatalf("History has %d points after %d changes", len(v.History), i+1)
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
