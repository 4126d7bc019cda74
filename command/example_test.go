package command_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/store"
)

type RenameProduct struct {
	ID    string
	Title string
}

func (c RenameProduct) Validate() error {
	if c.Title == "" {
		return command.Invalid("Title", "is required")
	}
	return nil
}

type ProductRenamed struct{ ID, Title string }

func (ProductRenamed) EventType() string { return "shop.ProductRenamed" }

func Example() {
	st := store.NewMemory()
	defer st.Close()
	titles := store.NewTable[string, string](st, "titles")
	bus := command.New(st, command.WithMiddleware(command.Retry(3, nil)))
	command.Register(bus, func(ctx context.Context, tx store.Tx, c RenameProduct) error {
		if ok, err := titles.Exists(tx, c.ID); err != nil || !ok {
			return errors.Join(err, store.NotFound("product", c.ID))
		}
		if _, err := titles.Put(tx, c.ID, c.Title); err != nil {
			return err
		}
		tx.Record("product/"+c.ID, ProductRenamed{c.ID, c.Title})
		return nil
	})
	_, _ = st.Update(context.Background(), func(tx store.Tx) error { return titles.Insert(tx, "p1", "Kettle") })

	ctx := context.Background()
	res, err := bus.Dispatch(ctx, RenameProduct{ID: "p1", Title: "Tea kettle"})
	fmt.Println("token", res.Position, err)

	_, err = bus.Dispatch(ctx, RenameProduct{ID: "p1"})
	var ve *command.ValidationError
	fmt.Println(errors.Is(err, command.ErrValidation), errors.As(err, &ve) && ve.Fields[0].Field == "Title")

	_, err = bus.Dispatch(ctx, RenameProduct{ID: "p2", Title: "x"})
	fmt.Println(errors.Is(err, store.ErrNotFound), err)
	// Output:
	// token 1 <nil>
	// true true
	// true store: product p2 not found
}

type BookSeat struct{ Flight string }

func ExampleReject() {
	st := store.NewMemory()
	defer st.Close()
	seats := store.NewTable[string, int](st, "free_seats")
	bus := command.New(st)
	command.Register(bus, func(ctx context.Context, tx store.Tx, c BookSeat) error {
		free, ver, err := seats.Get(tx, c.Flight)
		if err != nil {
			return err
		}
		if free == 0 {
			return command.Reject("no_seats_left", "flight "+c.Flight+" is full")
		}
		_, err = seats.PutIf(tx, c.Flight, free-1, ver)
		return err
	})
	_, _ = st.Update(context.Background(), func(tx store.Tx) error { return seats.Insert(tx, "LH1", 1) })

	for range 2 {
		_, err := bus.Dispatch(context.Background(), &BookSeat{Flight: "LH1"}) // a pointer works too
		var rej *command.RejectedError
		if errors.As(err, &rej) {
			fmt.Println(errors.Is(err, command.ErrRejected), rej.Code, "-", rej.Message)
		} else {
			fmt.Println("booked", err)
		}
	}
	// Output:
	// booked <nil>
	// true no_seats_left - flight LH1 is full
}
