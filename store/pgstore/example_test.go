package pgstore_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// ProductAdded is the event of the examples.
type ProductAdded struct {
	SKU  string `json:"sku"`
	Name string `json:"name"`
}

func (ProductAdded) EventType() string { return "catalog.product_added" }

// Product is a row of the write model.
type Product struct {
	Name  string `json:"name"`
	Stock int    `json:"stock"`
}

// The write side: a typed table, the handler's own SQL and an event commit in
// one transaction; a follower reads the event once it is final. (Examples
// without output only compile; run it against a server of your own.)
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("CQRSKIT_POSTGRES_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	reg := event.NewRegistry()
	if err := event.Register[ProductAdded](reg); err != nil {
		log.Fatal(err)
	}
	st, err := pgstore.New(ctx, pool, reg, pgstore.WithSchema("catalog"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close() // before pool.Close: defers run in reverse

	products := store.NewTable[string, Product](st, "products")
	pos, err := st.Update(ctx, func(tx store.Tx) error {
		// Optimistic concurrency on the stream: of two concurrent adds,
		// one commits and the other gets a *store.ConflictError.
		if err := tx.ExpectVersion("product/lamp-1", 0); err != nil {
			return err
		}
		if err := products.Insert(tx, "lamp-1", Product{Name: "Desk lamp", Stock: 3}); err != nil {
			return err
		}
		tx.Record("product/lamp-1", ProductAdded{SKU: "lamp-1", Name: "Desk lamp"})
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	// pos is the read-your-writes token: wait until it is readable.
	if err := st.Wait(ctx, pos-1); err != nil {
		log.Fatal(err)
	}
	recs, err := st.Read(ctx, 0, make([]event.Record, 0, 10))
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Println(r.Stream, r.Version, r.Data.(ProductAdded).Name)
	}
}

// A handler can run its own SQL in the unit of work.
func ExampleSQL() {
	ctx := context.Background()
	var st *pgstore.Store // from pgstore.New
	_, err := st.Update(ctx, func(tx store.Tx) error {
		sqlTx, _ := pgstore.SQL(tx)
		if _, err := sqlTx.Exec(ctx, `UPDATE shop.stock SET qty = qty - 1 WHERE sku = $1`, "lamp-1"); err != nil {
			return err
		}
		tx.Record("product/lamp-1", ProductAdded{SKU: "lamp-1"})
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}

// A read model in the same database, updated exactly once per event: the
// checkpoint moves in the transaction that applies the event.
func ExampleNewProjector() {
	ctx := context.Background()
	var st *pgstore.Store // from pgstore.New
	names := pgstore.NewProjector(st, "product-names", func(ctx context.Context, tx pgx.Tx, rec event.Record) error {
		added, ok := rec.Data.(ProductAdded)
		if !ok {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO shop.product_names (sku, name) VALUES ($1, $2)
			ON CONFLICT (sku) DO UPDATE SET name = excluded.name`, added.SKU, added.Name)
		return err
	})

	// A projection runner feeds it from its own checkpoint; by hand:
	cp, err := names.LoadCheckpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	recs, err := st.Read(ctx, cp.Position, make([]event.Record, 0, 100))
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		if err := names.Handle(ctx, r); err != nil {
			log.Fatal(err) // the record stays unapplied; retry later
		}
	}
}
