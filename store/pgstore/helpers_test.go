package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection/projectiontest"
	"github.com/cqrskit/cqrs/store/pgstore"
	"github.com/cqrskit/cqrs/store/storetest"
)

// urlEnv names the environment variable holding the test server's URL.
const urlEnv = "CQRSKIT_POSTGRES_URL"

func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(urlEnv)
	if u == "" {
		t.Skip(urlEnv + " is not set: set it to a PostgreSQL URL, e.g. " +
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the pgstore tests")
	}
	return u
}

// newPool connects to the test server; the pool is closed when the test ends.
func newPool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testURL(t))
	require.NoError(t, err)
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// newSchema returns a fresh schema name that is dropped when the test ends,
// so tests never see each other's tables.
func newSchema(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "cqrskit_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		_, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// testRegistry knows the storetest events and the events of these tests.
func testRegistry(t testing.TB) *event.Registry {
	t.Helper()
	reg := event.NewRegistry()
	require.NoError(t, storetest.Register(reg))
	require.NoError(t, event.Register[Incremented](reg))
	require.NoError(t, event.Register[Tick](reg))
	require.NoError(t, event.Register[projectiontest.ReplayEvent](reg))
	return reg
}

// newStore opens a Store in a fresh schema; it is closed when the test ends.
func newStore(t testing.TB, pool *pgxpool.Pool, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	schema := newSchema(t, pool)
	st, err := pgstore.New(context.Background(), pool, testRegistry(t), append([]pgstore.Option{pgstore.WithSchema(schema)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// Incremented is recorded by the counter commands of these tests.
type Incremented struct {
	Key string `json:"key"`
	N   int    `json:"n"` // the counter's value after the increment
}

func (Incremented) EventType() string { return "pgstore_test.incremented" }

// Tick is a payload that identifies its writer and sequence number.
type Tick struct {
	Writer int `json:"w"`
	Seq    int `json:"s"`
}

func (Tick) EventType() string { return "pgstore_test.tick" }

// committedHead is the position of the newest committed record. Head is the
// newest readable one, which a transaction of another test running against
// the same server can hold back for a moment; a test that means "everything
// written so far" must use this instead.
func committedHead(ctx context.Context, st *pgstore.Store) (event.Position, error) {
	hb, err := st.HeldBack(ctx)
	if err != nil {
		return 0, err
	}
	if hb != nil {
		return hb.Head, nil
	}
	return st.Head(ctx)
}
