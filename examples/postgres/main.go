// Command postgres runs the product-catalog demo with the write side, the
// event log and the checkpoints in PostgreSQL (store/pgstore). The read
// models stay in memory and are fed from the PostgreSQL log.
//
//	go run ./examples/postgres -postgres "$CQRSKIT_POSTGRES_URL"
//
// Each run uses a fresh schema, dropped at the end unless -keep is given.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/examples/catalog/demo"
	"github.com/cqrskit/cqrs/store/pgstore"
)

func main() {
	url := flag.String("postgres", os.Getenv("CQRSKIT_POSTGRES_URL"), "PostgreSQL connection URL (default $CQRSKIT_POSTGRES_URL)")
	products := flag.Int("products", 200, "catalog size to seed")
	keep := flag.Bool("keep", false, "keep the demo's schema instead of dropping it")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "postgres: set -postgres or CQRSKIT_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
		os.Exit(2)
	}
	schema := fmt.Sprintf("cqrskit_demo_%d", time.Now().UnixNano())
	if err := run(context.Background(), os.Stdout, *url, schema, *products, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "postgres:", demo.Describe(err))
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer, url, schema string, products int, keep bool) (err error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := event.NewRegistry()
	if err := catalog.RegisterEvents(reg); err != nil {
		return err
	}
	clk := demo.NewClock()
	st, err := pgstore.New(ctx, pool, reg, pgstore.WithSchema(schema), pgstore.WithClock(clk.Now))
	if err != nil {
		return err
	}
	defer func() {
		st.Close()
		if !keep {
			if _, derr := pool.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); derr != nil && err == nil {
				err = derr
			}
		}
	}()
	fmt.Fprintf(w, "PostgreSQL schema %s\n", schema)
	return demo.Run(ctx, w, st, st, clk, products)
}
