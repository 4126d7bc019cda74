package catalog_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/store"
)

func Example() {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()
	app, err := catalog.Open(ctx, st, st, catalog.Config{})
	if err != nil {
		panic(err)
	}
	defer app.Close()

	for _, cmd := range []any{
		catalog.RegisterSeller{SellerID: "s1", Name: "Acme", Rating: 4.6},
		catalog.ListProduct{ProductID: "p1", SellerID: "s1", Title: "Kettle", PriceCents: 4900, Stock: 3},
		catalog.SubmitReview{ReviewID: "r1", ProductID: "p1", Author: "ann", Rating: 5},
		catalog.SubmitReview{ReviewID: "r2", ProductID: "p1", Author: "bob", Rating: 4},
		catalog.UpdatePrice{ProductID: "p1", SellerID: "s1", PriceCents: 3900},
		catalog.RenameSeller{SellerID: "s1", Name: "Acme Outlet"},
	} {
		if _, err := app.Dispatch(ctx, cmd); err != nil {
			panic(err)
		}
	}
	_, err = app.Dispatch(ctx, catalog.UpdatePrice{ProductID: "p1", SellerID: "s2", PriceCents: 1})
	fmt.Println("other seller:", errors.Is(err, command.ErrForbidden))

	v, _ := app.Views.Product("p1")
	fmt.Printf("%s by %s: $%d.%02d (was $%d.%02d, dropped %v), %.1f stars from %d reviews, newest by %s\n",
		v.Title, v.SellerName, v.PriceCents/100, v.PriceCents%100,
		v.PreviousPriceCents/100, v.PreviousPriceCents%100, v.PriceDropped,
		v.AverageRating(), v.ReviewCount(), v.Recent.At(0).Author)
	// Output:
	// other seller: true
	// Kettle by Acme Outlet: $39.00 (was $49.00, dropped true), 4.5 stars from 2 reviews, newest by bob
}
