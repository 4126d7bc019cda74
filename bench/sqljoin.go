package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/store"
)

// The SQL baseline is the seed's design: a normalized 5-table schema
// (sellers, products, reviews, shipping_options, price_history) and the
// product page as one query.
//
// The seed's query was
//
//	SELECT p.*, AVG(r.rating), COUNT(r.id), array_agg(s.method), ...
//	FROM products p JOIN sellers ... LEFT JOIN reviews r
//	LEFT JOIN shipping_options s LEFT JOIN price_history ... GROUP BY p.id
//
// which is wrong: reviews x shipping options x price rows fan out, so
// COUNT(r.id) is multiplied, the method list repeats, and PostgreSQL
// rejects the GROUP BY (seller columns are neither grouped nor aggregated).
// The queries below aggregate each child table on its own, in correlated
// subqueries (SQLite) or LATERAL joins (PostgreSQL), and return everything
// the product view holds: the product row, the seller's name and rating,
// average rating and count, the last 5 reviews, the shipping options, and
// the price in effect 30 and 90 days ago.

// Times are stored as Unix nanoseconds (BIGINT) so both databases keep the
// exact commit time the views hold.

const sqlSchema = `
CREATE TABLE sellers (
	id     TEXT PRIMARY KEY,
	name   TEXT NOT NULL,
	rating DOUBLE PRECISION NOT NULL
);
CREATE TABLE products (
	id          TEXT PRIMARY KEY,
	seller_id   TEXT NOT NULL REFERENCES sellers (id),
	title       TEXT NOT NULL,
	description TEXT NOT NULL,
	price_cents BIGINT NOT NULL,
	stock       INTEGER NOT NULL
);
CREATE TABLE reviews (
	id         TEXT PRIMARY KEY,
	product_id TEXT NOT NULL REFERENCES products (id),
	author     TEXT NOT NULL,
	rating     INTEGER NOT NULL,
	body       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	seq        BIGINT NOT NULL
);
CREATE TABLE shipping_options (
	product_id  TEXT NOT NULL REFERENCES products (id),
	pos         INTEGER NOT NULL,
	method      TEXT NOT NULL,
	price_cents BIGINT NOT NULL,
	days        INTEGER NOT NULL,
	PRIMARY KEY (product_id, pos)
);
CREATE TABLE price_history (
	product_id TEXT NOT NULL REFERENCES products (id),
	seq        INTEGER NOT NULL,
	cents      BIGINT NOT NULL,
	at         BIGINT NOT NULL,
	PRIMARY KEY (product_id, seq)
);
`

// Indexes are created after the bulk load.
const sqlIndexes = `
CREATE INDEX products_seller ON products (seller_id);
CREATE INDEX reviews_product ON reviews (product_id, created_at DESC, seq DESC, rating);
`

// sqlitePageQuery: ?1 product ID, ?2 and ?3 the cut-off times (Unix ns) for
// the price 30 and 90 days ago. Aggregate ORDER BY needs SQLite >= 3.44.
const sqlitePageQuery = `
SELECT p.id, p.title, p.description, p.price_cents, p.stock, p.seller_id, s.name, s.rating,
	(SELECT AVG(rating) FROM reviews WHERE product_id = p.id),
	(SELECT COUNT(*) FROM reviews WHERE product_id = p.id),
	(SELECT json_group_array(json_object('id', id, 'author', author, 'rating', rating, 'text', body, 'at', created_at)
			ORDER BY created_at DESC, seq DESC)
		FROM (SELECT id, author, rating, body, created_at, seq FROM reviews
			WHERE product_id = p.id ORDER BY created_at DESC, seq DESC LIMIT 5)),
	(SELECT json_group_array(json_object('method', method, 'pricecents', price_cents, 'days', days) ORDER BY pos)
		FROM shipping_options WHERE product_id = p.id),
	(SELECT cents FROM price_history WHERE product_id = p.id AND at <= ?2 ORDER BY seq DESC LIMIT 1),
	(SELECT cents FROM price_history WHERE product_id = p.id AND at <= ?3 ORDER BY seq DESC LIMIT 1)
FROM products p
JOIN sellers s ON s.id = p.seller_id
WHERE p.id = ?1`

// postgresPageQuery: $1 product ID, $2 and $3 the cut-off times.
const postgresPageQuery = `
SELECT p.id, p.title, p.description, p.price_cents, p.stock, p.seller_id, s.name, s.rating,
	r.avg, r.cnt, rr.recent, sh.options, ph30.cents, ph90.cents
FROM products p
JOIN sellers s ON s.id = p.seller_id
CROSS JOIN LATERAL (
	SELECT AVG(rating)::float8 AS avg, COUNT(*) AS cnt FROM reviews WHERE product_id = p.id
) r
CROSS JOIN LATERAL (
	SELECT COALESCE(json_agg(json_build_object('id', x.id, 'author', x.author, 'rating', x.rating, 'text', x.body, 'at', x.created_at)
		ORDER BY x.created_at DESC, x.seq DESC), '[]'::json) AS recent
	FROM (SELECT id, author, rating, body, created_at, seq FROM reviews
		WHERE product_id = p.id ORDER BY created_at DESC, seq DESC LIMIT 5) x
) rr
CROSS JOIN LATERAL (
	SELECT COALESCE(json_agg(json_build_object('method', method, 'pricecents', price_cents, 'days', days) ORDER BY pos), '[]'::json) AS options
	FROM shipping_options WHERE product_id = p.id
) sh
LEFT JOIN LATERAL (
	SELECT cents FROM price_history WHERE product_id = p.id AND at <= $2 ORDER BY seq DESC LIMIT 1
) ph30 ON true
LEFT JOIN LATERAL (
	SELECT cents FROM price_history WHERE product_id = p.id AND at <= $3 ORDER BY seq DESC LIMIT 1
) ph90 ON true
WHERE p.id = $1`

// SeedJoinSQLite is the seed's query in SQLite's dialect, kept to show the
// fan-out; do not use it.
const SeedJoinSQLite = `
SELECT p.id, AVG(r.rating), COUNT(r.id), group_concat(sh.method)
FROM products p
JOIN sellers s ON s.id = p.seller_id
LEFT JOIN reviews r ON r.product_id = p.id
LEFT JOIN shipping_options sh ON sh.product_id = p.id
LEFT JOIN price_history ph ON ph.product_id = p.id
WHERE p.id = ?1
GROUP BY p.id`

// SeedJoinPostgres is the seed's query in PostgreSQL's dialect.
const SeedJoinPostgres = `
SELECT p.*, s.name, AVG(r.rating), COUNT(r.id), array_agg(sh.method)
FROM products p
JOIN sellers s ON s.id = p.seller_id
LEFT JOIN reviews r ON r.product_id = p.id
LEFT JOIN shipping_options sh ON sh.product_id = p.id
LEFT JOIN price_history ph ON ph.product_id = p.id
WHERE p.id = $1
GROUP BY p.id`

// PageReview is a review as the page query returns it.
type PageReview struct {
	ID     string `json:"id"`
	Author string `json:"author"`
	Rating int    `json:"rating"`
	Text   string `json:"text"`
	At     int64  `json:"at"` // Unix ns
}

// ProductPage is one row of the page query, decoded.
type ProductPage struct {
	ID, Title, Description string
	PriceCents             int64
	Stock                  int
	SellerID, SellerName   string
	SellerRating           float64
	AvgRating              float64 // 0 without reviews
	ReviewCount            int
	Recent                 []PageReview
	Shipping               []catalog.ShippingOption
	Price30, Price90       int64
	Has30, Has90           bool
}

// cutoffs returns the Unix-ns times 30 and 90 days before now.
func cutoffs(now time.Time) (int64, int64) {
	return now.Add(-30 * day).UnixNano(), now.Add(-90 * day).UnixNano()
}

func (p *ProductPage) decode(avg sql.NullFloat64, recent, shipping []byte, p30, p90 sql.NullInt64) error {
	p.AvgRating = avg.Float64
	p.Price30, p.Has30 = p30.Int64, p30.Valid
	p.Price90, p.Has90 = p90.Int64, p90.Valid
	if err := json.Unmarshal(recent, &p.Recent); err != nil {
		return fmt.Errorf("decode reviews: %w", err)
	}
	if err := json.Unmarshal(shipping, &p.Shipping); err != nil {
		return fmt.Errorf("decode shipping: %w", err)
	}
	return nil
}

// Snapshot is the normalized state of a catalog, folded from its event log:
// what the seed's database holds.
type Snapshot struct {
	Sellers  []catalog.Seller
	Products []catalog.Product
	Reviews  []SnapReview
	Shipping map[string][]catalog.ShippingOption
	Prices   []SnapPrice
}

// SnapReview is a reviews row.
type SnapReview struct {
	catalog.Review
	At, Seq int64
}

// SnapPrice is a price_history row.
type SnapPrice struct {
	ProductID string
	Seq       int
	Cents     int64
	At        int64
}

// LoadSnapshot folds the log up to and including upTo into a Snapshot.
func LoadSnapshot(ctx context.Context, lg store.Log, upTo event.Position) (*Snapshot, error) {
	s := &Snapshot{Shipping: make(map[string][]catalog.ShippingOption)}
	sellers := make(map[string]int)
	products := make(map[string]int)
	seqs := make(map[string]int)
	price := func(id string, cents int64, at time.Time) {
		seqs[id]++
		s.Prices = append(s.Prices, SnapPrice{ProductID: id, Seq: seqs[id], Cents: cents, At: at.UnixNano()})
	}
	buf := make([]event.Record, 0, 4096)
	for pos := event.Position(0); pos < upTo; {
		recs, err := lg.Read(ctx, pos, buf[:0])
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			if rec.Position > upTo {
				break
			}
			pos = rec.Position
			switch e := rec.Data.(type) {
			case catalog.SellerRegistered:
				sellers[e.SellerID] = len(s.Sellers)
				s.Sellers = append(s.Sellers, catalog.Seller{ID: e.SellerID, Name: e.Name, Rating: e.Rating})
			case catalog.SellerRenamed:
				s.Sellers[sellers[e.SellerID]].Name = e.Name
			case catalog.SellerRated:
				s.Sellers[sellers[e.SellerID]].Rating = e.Rating
			case catalog.ProductListed:
				products[e.ProductID] = len(s.Products)
				s.Products = append(s.Products, catalog.Product{ID: e.ProductID, SellerID: e.SellerID, Title: e.Title, Description: e.Description, PriceCents: e.PriceCents, Stock: e.Stock})
				price(e.ProductID, e.PriceCents, rec.Time)
			case catalog.PriceChanged:
				s.Products[products[e.ProductID]].PriceCents = e.NewCents
				price(e.ProductID, e.NewCents, rec.Time)
			case catalog.StockChanged:
				s.Products[products[e.ProductID]].Stock = e.Stock
			case catalog.DetailsChanged:
				p := &s.Products[products[e.ProductID]]
				p.Title, p.Description = e.Title, e.Description
			case catalog.ReviewSubmitted:
				s.Reviews = append(s.Reviews, SnapReview{
					Review: catalog.Review{ID: e.ReviewID, ProductID: e.ProductID, Author: e.Author, Rating: e.Rating, Text: e.Text},
					At:     rec.Time.UnixNano(), Seq: int64(rec.Position),
				})
			case catalog.ShippingSet:
				s.Shipping[e.ProductID] = e.Options
			}
		}
		clear(recs)
	}
	return s, nil
}

// SQLite is the baseline database on SQLite (modernc.org/sqlite, pure Go)
// in a temporary file in WAL mode.
type SQLite struct {
	DB   *sql.DB
	dir  string
	page *sql.Stmt
}

// OpenSQLite creates the schema in a new temporary database and loads s.
func OpenSQLite(ctx context.Context, s *Snapshot) (*SQLite, error) {
	dir, err := os.MkdirTemp("", "cqrskit-bench-sqlite-")
	if err != nil {
		return nil, err
	}
	dsn := "file:" + filepath.Join(dir, "catalog.db") +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=foreign_keys(OFF)&_pragma=cache_size(-262144)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	db.SetMaxOpenConns(max(runtime.GOMAXPROCS(0), 2))
	db.SetMaxIdleConns(max(runtime.GOMAXPROCS(0), 2))
	q := &SQLite{DB: db, dir: dir}
	if err := q.load(ctx, s); err != nil {
		q.Close()
		return nil, err
	}
	if q.page, err = db.PrepareContext(ctx, sqlitePageQuery); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func (q *SQLite) load(ctx context.Context, s *Snapshot) error {
	if _, err := q.DB.ExecContext(ctx, sqlSchema); err != nil {
		return err
	}
	tx, err := q.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	insert := func(query string, rows int, args func(i int) []any) error {
		st, err := tx.PrepareContext(ctx, query)
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range rows {
			if _, err := st.ExecContext(ctx, args(i)...); err != nil {
				return err
			}
		}
		return nil
	}
	var ship []SnapShipping
	for _, p := range s.Products {
		for i, o := range s.Shipping[p.ID] {
			ship = append(ship, SnapShipping{p.ID, i, o})
		}
	}
	err = errors.Join(
		insert(`INSERT INTO sellers VALUES (?, ?, ?)`, len(s.Sellers), func(i int) []any {
			r := s.Sellers[i]
			return []any{r.ID, r.Name, r.Rating}
		}),
		insert(`INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)`, len(s.Products), func(i int) []any {
			r := s.Products[i]
			return []any{r.ID, r.SellerID, r.Title, r.Description, r.PriceCents, r.Stock}
		}),
		insert(`INSERT INTO reviews VALUES (?, ?, ?, ?, ?, ?, ?)`, len(s.Reviews), func(i int) []any {
			r := s.Reviews[i]
			return []any{r.ID, r.ProductID, r.Author, r.Rating, r.Text, r.At, r.Seq}
		}),
		insert(`INSERT INTO shipping_options VALUES (?, ?, ?, ?, ?)`, len(ship), func(i int) []any {
			r := ship[i]
			return []any{r.ProductID, r.Pos, r.Method, r.PriceCents, r.Days}
		}),
		insert(`INSERT INTO price_history VALUES (?, ?, ?, ?)`, len(s.Prices), func(i int) []any {
			r := s.Prices[i]
			return []any{r.ProductID, r.Seq, r.Cents, r.At}
		}),
	)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, sqlIndexes); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = q.DB.ExecContext(ctx, `ANALYZE`)
	return err
}

// SnapShipping is a shipping_options row.
type SnapShipping struct {
	ProductID string
	Pos       int
	catalog.ShippingOption
}

// Page runs the product-page query.
func (q *SQLite) Page(ctx context.Context, id string, now time.Time) (ProductPage, error) {
	var p ProductPage
	var avg sql.NullFloat64
	var recent, shipping []byte
	var p30, p90 sql.NullInt64
	c30, c90 := cutoffs(now)
	err := q.page.QueryRowContext(ctx, id, c30, c90).Scan(&p.ID, &p.Title, &p.Description, &p.PriceCents, &p.Stock,
		&p.SellerID, &p.SellerName, &p.SellerRating, &avg, &p.ReviewCount, &recent, &shipping, &p30, &p90)
	if err != nil {
		return p, err
	}
	return p, p.decode(avg, recent, shipping, p30, p90)
}

// Close closes the database and removes its files.
func (q *SQLite) Close() error {
	if q.page != nil {
		q.page.Close()
	}
	err := q.DB.Close()
	os.RemoveAll(q.dir)
	return err
}

// Postgres is the baseline database on PostgreSQL via pgx, in a private
// schema that Close drops.
type Postgres struct {
	Pool   *pgxpool.Pool
	schema string
	admin  *pgx.Conn
}

// OpenPostgres creates a private schema at url and loads s into it.
func OpenPostgres(ctx context.Context, url string, s *Snapshot) (*Postgres, error) {
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	schema := "cqrskit_bench_" + strconv.Itoa(os.Getpid()) + "_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close(ctx)
		return nil, err
	}
	q := &Postgres{schema: schema, admin: admin}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		q.Close()
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = int32(max(runtime.GOMAXPROCS(0), 2))
	if q.Pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		q.Close()
		return nil, err
	}
	if err := q.load(ctx, s); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func (q *Postgres) load(ctx context.Context, s *Snapshot) error {
	conn, err := q.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, sqlSchema); err != nil {
		return err
	}
	copyRows := func(table string, cols []string, n int, row func(i int) []any) error {
		_, err := conn.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(n, func(i int) ([]any, error) { return row(i), nil }))
		if err != nil {
			return fmt.Errorf("copy %s: %w", table, err)
		}
		return nil
	}
	var ship []SnapShipping
	for _, p := range s.Products {
		for i, o := range s.Shipping[p.ID] {
			ship = append(ship, SnapShipping{p.ID, i, o})
		}
	}
	if err := copyRows("sellers", []string{"id", "name", "rating"}, len(s.Sellers), func(i int) []any {
		r := s.Sellers[i]
		return []any{r.ID, r.Name, r.Rating}
	}); err != nil {
		return err
	}
	if err := copyRows("products", []string{"id", "seller_id", "title", "description", "price_cents", "stock"}, len(s.Products), func(i int) []any {
		r := s.Products[i]
		return []any{r.ID, r.SellerID, r.Title, r.Description, r.PriceCents, int32(r.Stock)}
	}); err != nil {
		return err
	}
	if err := copyRows("reviews", []string{"id", "product_id", "author", "rating", "body", "created_at", "seq"}, len(s.Reviews), func(i int) []any {
		r := s.Reviews[i]
		return []any{r.ID, r.ProductID, r.Author, int32(r.Rating), r.Text, r.At, r.Seq}
	}); err != nil {
		return err
	}
	if err := copyRows("shipping_options", []string{"product_id", "pos", "method", "price_cents", "days"}, len(ship), func(i int) []any {
		r := ship[i]
		return []any{r.ProductID, int32(r.Pos), r.Method, r.PriceCents, int32(r.Days)}
	}); err != nil {
		return err
	}
	if err := copyRows("price_history", []string{"product_id", "seq", "cents", "at"}, len(s.Prices), func(i int) []any {
		r := s.Prices[i]
		return []any{r.ProductID, int32(r.Seq), r.Cents, r.At}
	}); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, sqlIndexes); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "ANALYZE")
	return err
}

// Page runs the product-page query.
func (q *Postgres) Page(ctx context.Context, id string, now time.Time) (ProductPage, error) {
	var p ProductPage
	var avg sql.NullFloat64
	var recent, shipping []byte
	var p30, p90 sql.NullInt64
	var stock int32
	var count int64
	c30, c90 := cutoffs(now)
	err := q.Pool.QueryRow(ctx, postgresPageQuery, id, c30, c90).Scan(&p.ID, &p.Title, &p.Description, &p.PriceCents, &stock,
		&p.SellerID, &p.SellerName, &p.SellerRating, &avg, &count, &recent, &shipping, &p30, &p90)
	if err != nil {
		return p, err
	}
	p.Stock, p.ReviewCount = int(stock), int(count)
	return p, p.decode(avg, recent, shipping, p30, p90)
}

// Close drops the schema and closes the connections.
func (q *Postgres) Close() error {
	if q.Pool != nil {
		q.Pool.Close()
	}
	ctx := context.Background()
	_, err := q.admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+q.schema+" CASCADE")
	return errors.Join(err, q.admin.Close(ctx))
}
