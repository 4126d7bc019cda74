package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrskit/cqrs/bench"
	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
	"github.com/cqrskit/cqrs/store"
)

// The -naive-join mode is the seed's design, served by the same HTTP API
// for a side-by-side load test: GET /v1/products/{id} runs the 5-table
// query (products, sellers, reviews, shipping options, price history; the
// corrected form of the seed's JOIN in package bench) on PostgreSQL for
// every request instead of reading a view. The tables are loaded from the
// catalog's log once the seed is in, by bench's loader, and every command
// afterwards is written through to them (joinWriter), so the query reads
// what the writes change, as the seed's service would. Commands are still
// validated by the in-memory write model; every other query is served by
// the in-memory views.

// openNaiveJoin loads the catalog in lg into a private schema at url and
// wraps sd so that product reads run the JOIN and writes reach the tables.
func openNaiveJoin(ctx context.Context, url string, lg store.Log, sd *sides) error {
	snap, err := bench.LoadSnapshot(ctx, lg, event.Position(math.MaxUint64))
	if err != nil {
		return fmt.Errorf("catalogd: -naive-join: read the log: %w", err)
	}
	pg, err := bench.OpenPostgres(ctx, url, snap)
	if err != nil {
		return fmt.Errorf("catalogd: -naive-join: load PostgreSQL: %w", err)
	}
	// The writes get their own connections: bench sizes the page query's
	// pool to the cores (2 here), and a command queued behind thousands of
	// reads for one of those would measure the pool, not the database.
	wpool, err := writePool(ctx, url, pg)
	if err != nil {
		_ = pg.Close()
		return fmt.Errorf("catalogd: -naive-join: %w", err)
	}
	// The bulk load leaves a checkpoint's worth of dirty pages; flush them
	// now rather than in the middle of the measurement (best effort: it
	// needs the pg_checkpoint role or a superuser).
	_, _ = wpool.Exec(ctx, "CHECKPOINT")
	jw := &joinWriter{next: sd.opts.Writer, lg: lg, pool: wpool}
	// Nothing writes during start-up: the tables hold the log up to its
	// head, and the writer continues after it.
	jw.applied, err = lg.Head(ctx)
	if err == nil {
		_, err = wpool.Exec(ctx, `CREATE TABLE naive_applied (pos BIGINT NOT NULL); INSERT INTO naive_applied VALUES (`+strconv.FormatUint(uint64(jw.applied), 10)+`)`)
	}
	if err != nil {
		wpool.Close()
		_ = pg.Close()
		return fmt.Errorf("catalogd: -naive-join: %w", err)
	}
	sd.opts.Writer = jw
	sd.opts.Views = joinViews{Views: sd.opts.Views, pg: pg}
	closeSides := sd.close
	sd.close = func() error {
		err := closeSides()
		wpool.Close()
		return errors.Join(err, pg.Close())
	}
	return nil
}

// writePool opens a pool on the schema bench loaded the tables into.
func writePool(ctx context.Context, url string, pg *bench.Postgres) (*pgxpool.Pool, error) {
	var schema string
	if err := pg.Pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 2 // the writer applies one command at a time
	return pgxpool.NewWithConfig(ctx, cfg)
}

// joinViews answers product reads with the JOIN; everything else goes to
// the embedded views.
type joinViews struct {
	httpapi.Views
	pg *bench.Postgres
}

var _ httpapi.ProductJSONViews = joinViews{}

// ProductJSON runs the page query. The tables have no product version,
// update time, trending badge or previous price, so those fields are zero.
func (v joinViews) ProductJSON(ctx context.Context, id string, now time.Time) (httpapi.ProductJSON, error) {
	p, err := v.pg.Page(ctx, id, now)
	if errors.Is(err, pgx.ErrNoRows) {
		return httpapi.ProductJSON{}, store.NotFound("product", id)
	}
	if err != nil {
		return httpapi.ProductJSON{}, err
	}
	out := httpapi.ProductJSON{
		ID: p.ID, Title: p.Title, Description: p.Description, PriceCents: p.PriceCents,
		Stock: p.Stock, InStock: p.Stock > 0, AverageRating: math.Round(p.AvgRating*10) / 10, ReviewCount: p.ReviewCount,
		RecentReviews: make([]httpapi.ReviewJSON, len(p.Recent)),
		Seller:        httpapi.SellerJSON{ID: p.SellerID, Name: p.SellerName, Rating: p.SellerRating},
		Shipping:      make([]httpapi.ShippingJSON, len(p.Shipping)),
	}
	for i, r := range p.Recent {
		out.RecentReviews[i] = httpapi.ReviewJSON{ReviewID: r.ID, Author: r.Author, Rating: r.Rating, Text: r.Text, At: time.Unix(0, r.At).UTC()}
	}
	for i, o := range p.Shipping {
		out.Shipping[i] = httpapi.ShippingJSON{Method: o.Method, PriceCents: o.PriceCents, Days: o.Days}
	}
	if p.Has30 {
		out.Price30DaysAgoCents = &p.Price30
	}
	if p.Has90 {
		out.Price90DaysAgoCents = &p.Price90
	}
	return out, nil
}

// writeThroughTimeout bounds one command's write-through transaction.
const writeThroughTimeout = 10 * time.Second

// joinWriter writes every committed command's events through to the
// tables, in one PostgreSQL transaction per command, before the command's
// response: the seed's service updated its tables in the request.
type joinWriter struct {
	next httpapi.Dispatcher
	lg   store.Log
	pool *pgxpool.Pool

	mu      sync.Mutex // applies in log order
	applied event.Position
	buf     []event.Record
}

// Dispatch dispatches cmd, then applies what the log holds beyond the
// tables to them. A failure to apply is the command's error: its event is
// committed to the log, but the tables, which the product reads serve,
// miss it until the next command applies it.
func (j *joinWriter) Dispatch(ctx context.Context, cmd any) (command.Result, error) {
	res, err := j.next.Dispatch(ctx, cmd)
	if err != nil {
		return res, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	// The tables follow the log whatever the client does: a cancelled
	// request must not cut the transaction short.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeThroughTimeout)
	defer cancel()
	// Everything the log holds beyond the tables (this command's events,
	// and any a failed write-through left behind).
	recs := j.buf[:0]
	for from := j.applied; ; {
		more, err := j.lg.Read(ctx, from, recs[len(recs):len(recs):cap(recs)])
		if err != nil {
			return res, err
		}
		if len(more) == 0 {
			break
		}
		recs = append(recs, more...)
		from = recs[len(recs)-1].Position
	}
	if len(recs) == 0 {
		return res, nil
	}
	err = pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		// A COMMIT whose answer was lost leaves j.applied behind the
		// tables; the position kept with them skips what they hold.
		var done int64
		if err := tx.QueryRow(ctx, `SELECT pos FROM naive_applied FOR UPDATE`).Scan(&done); err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, rec := range recs {
			if int64(rec.Position) > done {
				queueRow(b, rec)
			}
		}
		b.Queue(`UPDATE naive_applied SET pos = $1 WHERE pos < $1`, int64(recs[len(recs)-1].Position))
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return res, fmt.Errorf("catalogd: -naive-join: write the tables: %w", err)
	}
	j.applied = recs[len(recs)-1].Position
	clear(recs)
	j.buf = recs[:0]
	return res, nil
}

// queueRow queues the SQL of one event: the rows bench.LoadSnapshot folds
// it into, and the stock levels of reservations and restocks, which the
// loader does not fold (the seed has none).
func queueRow(b *pgx.Batch, rec event.Record) {
	switch e := rec.Data.(type) {
	case catalog.SellerRegistered:
		b.Queue(`INSERT INTO sellers VALUES ($1, $2, $3)`, e.SellerID, e.Name, e.Rating)
	case catalog.SellerRenamed:
		b.Queue(`UPDATE sellers SET name = $2 WHERE id = $1`, e.SellerID, e.Name)
	case catalog.SellerRated:
		b.Queue(`UPDATE sellers SET rating = $2 WHERE id = $1`, e.SellerID, e.Rating)
	case catalog.ProductListed:
		b.Queue(`INSERT INTO products VALUES ($1, $2, $3, $4, $5, $6)`, e.ProductID, e.SellerID, e.Title, e.Description, e.PriceCents, int32(e.Stock))
		queuePrice(b, e.ProductID, e.PriceCents, rec.Time)
	case catalog.PriceChanged:
		b.Queue(`UPDATE products SET price_cents = $2 WHERE id = $1`, e.ProductID, e.NewCents)
		queuePrice(b, e.ProductID, e.NewCents, rec.Time)
	case catalog.StockChanged:
		b.Queue(`UPDATE products SET stock = $2 WHERE id = $1`, e.ProductID, int32(e.Stock))
	case catalog.StockReserved:
		b.Queue(`UPDATE products SET stock = $2 WHERE id = $1`, e.ProductID, int32(e.Stock))
	case catalog.Restocked:
		b.Queue(`UPDATE products SET stock = $2 WHERE id = $1`, e.ProductID, int32(e.Stock))
	case catalog.DetailsChanged:
		b.Queue(`UPDATE products SET title = $2, description = $3 WHERE id = $1`, e.ProductID, e.Title, e.Description)
	case catalog.ReviewSubmitted:
		b.Queue(`INSERT INTO reviews VALUES ($1, $2, $3, $4, $5, $6, $7)`, e.ReviewID, e.ProductID, e.Author, int32(e.Rating), e.Text, rec.Time.UnixNano(), int64(rec.Position))
	case catalog.ShippingSet:
		b.Queue(`DELETE FROM shipping_options WHERE product_id = $1`, e.ProductID)
		for i, o := range e.Options {
			b.Queue(`INSERT INTO shipping_options VALUES ($1, $2, $3, $4, $5)`, e.ProductID, int32(i), o.Method, o.PriceCents, int32(o.Days))
		}
	}
}

func queuePrice(b *pgx.Batch, productID string, cents int64, at time.Time) {
	b.Queue(`INSERT INTO price_history SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3 FROM price_history WHERE product_id = $1`, productID, cents, at.UnixNano())
}
