package projection_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// Restock is a command; Restocked is the event it records.
type Restock struct {
	SKU string
	Qty int
}

type Restocked struct {
	SKU string
	Qty int
}

func (Restocked) EventType() string { return "catalog.restocked" }

// stockView is a read model: units in stock per SKU.
type stockView struct {
	event.Router
	mu    sync.RWMutex
	units map[string]int
}

func newStockView() *stockView {
	v := &stockView{units: map[string]int{}}
	event.On(&v.Router, func(_ context.Context, _ event.Record, e Restocked) error {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.units[e.SKU] += e.Qty
		return nil
	})
	return v
}

func (v *stockView) Name() string { return "stock" }

func (v *stockView) Units(sku string) int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.units[sku]
}

func newCatalog(r *projection.Runner, st store.Store) *command.Bus {
	bus := command.New(st, command.WithSyncer(r))
	command.Register(bus, func(_ context.Context, tx store.Tx, c Restock) error {
		if c.Qty <= 0 {
			return command.Invalid("Qty", "must be positive")
		}
		tx.Record("product/"+c.SKU, Restocked(c))
		return nil
	})
	return bus
}

// An inline projector is updated inside Dispatch, after the commit: a read
// right after Dispatch returns sees the write.
func Example_inline() {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()

	stock := newStockView()
	r := projection.NewRunner(st)
	if err := r.Add(stock); err != nil {
		panic(err)
	}
	if err := r.Start(ctx); err != nil {
		panic(err)
	}
	defer r.Close()
	bus := newCatalog(r, st)

	if _, err := command.Dispatch(ctx, bus, Restock{SKU: "p1", Qty: 5}); err != nil {
		panic(err)
	}
	res, err := command.Dispatch(ctx, bus, Restock{SKU: "p1", Qty: 3})
	if err != nil {
		panic(err)
	}
	fmt.Println("p1 in stock:", stock.Units("p1"), "at position", res.Position)
	// Output: p1 in stock: 8 at position 2
}

// An async projector follows the log on its own goroutine. A query that must
// include a write waits for the write's position token.
func Example_async() {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()

	stock := newStockView()
	r := projection.NewRunner(st)
	if err := r.Add(stock, projection.AsAsync()); err != nil {
		panic(err)
	}
	if err := r.Start(ctx); err != nil {
		panic(err)
	}
	defer r.Close()
	bus := newCatalog(r, st)

	res, err := command.Dispatch(ctx, bus, Restock{SKU: "p2", Qty: 4})
	if err != nil {
		panic(err)
	}
	token := res.Position.String() // e.g. returned to an HTTP client

	// Later, a query arrives with the token.
	pos, err := event.ParsePosition(token)
	if err != nil {
		panic(err)
	}
	if err := r.WaitFor(ctx, "stock", pos); err != nil {
		panic(err)
	}
	fmt.Println("p2 in stock:", stock.Units("p2"))
	// Output: p2 in stock: 4
}

// A projector that keeps failing on an event is stopped there (policy Stop)
// and reported by Status; after the fix, Resume retries the event.
func Example_stopAndResume() {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()

	var broken = true
	p := projection.Named("mailer", event.HandlerFunc(func(_ context.Context, rec event.Record) error {
		if broken && rec.Position == 2 {
			return errors.New("smtp: connection refused")
		}
		return nil
	}))
	r := projection.NewRunner(st)
	if err := r.Add(p, projection.WithRetry(2, nil)); err != nil {
		panic(err)
	}
	if err := r.Start(ctx); err != nil {
		panic(err)
	}
	defer r.Close()
	bus := newCatalog(r, st)

	command.Dispatch(ctx, bus, Restock{SKU: "p1", Qty: 1})
	_, err := command.Dispatch(ctx, bus, Restock{SKU: "p1", Qty: 1})
	fmt.Println(errors.Is(err, command.ErrAfterCommit), errors.Is(err, projection.ErrStopped))

	s, _ := r.StatusOf(ctx, "mailer")
	fmt.Println(s.State, s.Checkpoint, s.Behind)
	fmt.Println(s.Err)

	broken = false
	fmt.Println(r.Resume(ctx, "mailer"))
	s, _ = r.StatusOf(ctx, "mailer")
	fmt.Println(s.State, s.Checkpoint, s.Behind)
	// Output:
	// true true
	// stopped 1 1
	// projection: mailer stopped at position 2: smtp: connection refused
	// <nil>
	// running 2 0
}
