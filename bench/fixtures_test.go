package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/store"
)

// Shared fixtures: each is built once per process, on first use, so set-up
// is not repeated across benchmarks or across -count runs. TestMain closes
// them (dropping the PostgreSQL schema and the SQLite files).

// lazy is a fixture built once.
type lazy[T any] struct {
	once  sync.Once
	v     T
	err   error
	close func(T)
}

func (l *lazy[T]) get(tb testing.TB, what string, build func() (T, error)) T {
	tb.Helper()
	l.once.Do(func() {
		start := time.Now()
		// Set-up builds large heaps; collecting less often while building
		// halves set-up time. Benchmarks run at the default GOGC.
		old := debug.SetGCPercent(400)
		l.v, l.err = build()
		debug.SetGCPercent(old)
		runtime.GC()
		if l.err == nil {
			cleanups = append(cleanups, func() {
				if l.close != nil {
					l.close(l.v)
				}
			})
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(os.Stderr, "# set-up %s: %v (heap %d MiB)\n", what, time.Since(start).Round(time.Millisecond), ms.HeapAlloc>>20)
	})
	if l.err != nil {
		tb.Fatalf("set-up %s: %v", what, l.err)
	}
	return l.v
}

var (
	cleanupsMu sync.Mutex
	cleanups   []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupsMu.Lock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanupsMu.Unlock()
	os.Exit(code)
}

const seed = 42

var (
	benchCatalog = lazy[*Catalog]{close: (*Catalog).Close}
	testCatalogs = lazy[*Catalog]{close: (*Catalog).Close}
	benchSQLite  = lazy[*SQLite]{close: func(q *SQLite) { q.Close() }}
	benchPG      = lazy[*Postgres]{close: func(q *Postgres) { q.Close() }}
	benchWM      = lazy[*Watermill]{close: func(w *Watermill) { w.Close() }}
	benchLog     = lazy[*store.Memory]{close: func(m *store.Memory) { m.Close() }}
	sweepsMu     sync.Mutex
	sweeps       = map[int]*lazy[*Sweep]{}
)

// sharedCatalog is the benchmark catalog (CQRSKIT_BENCH_PRODUCTS products).
func sharedCatalog(tb testing.TB) *Catalog {
	n := ProductsFromEnv()
	return benchCatalog.get(tb, "catalog "+Human(n), func() (*Catalog, error) {
		return BuildCatalog(context.Background(), ScaleFor(n), seed)
	})
}

// testCatalog is a small catalog for the equivalence tests.
func testCatalog(tb testing.TB) *Catalog {
	return testCatalogs.get(tb, "test catalog", func() (*Catalog, error) {
		return BuildCatalog(context.Background(), ScaleFor(2000), seed)
	})
}

func sharedSQLite(tb testing.TB) *SQLite {
	c := sharedCatalog(tb)
	return benchSQLite.get(tb, "sqlite", func() (*SQLite, error) {
		ctx := context.Background()
		snap, err := LoadSnapshot(ctx, c.Store, c.SeedHead)
		if err != nil {
			return nil, err
		}
		return OpenSQLite(ctx, snap)
	})
}

// sharedPostgres returns nil when CQRSKIT_POSTGRES_URL is unset.
func sharedPostgres(tb testing.TB) *Postgres {
	url := os.Getenv("CQRSKIT_POSTGRES_URL")
	if url == "" {
		return nil
	}
	c := sharedCatalog(tb)
	return benchPG.get(tb, "postgres", func() (*Postgres, error) {
		ctx := context.Background()
		snap, err := LoadSnapshot(ctx, c.Store, c.SeedHead)
		if err != nil {
			return nil, err
		}
		return OpenPostgres(ctx, url, snap)
	})
}

func sharedWatermill(tb testing.TB) *Watermill {
	c := sharedCatalog(tb)
	return benchWM.get(tb, "watermill", func() (*Watermill, error) { return NewWatermill(c.Floor) })
}

// eventsFromEnv is the size of the projection benchmarks' log: ten events
// per catalog product (1M by default).
func eventsFromEnv() int { return 10 * ProductsFromEnv() }

func sharedLog(tb testing.TB) *store.Memory {
	return benchLog.get(tb, "log "+Human(eventsFromEnv()), func() (*store.Memory, error) {
		return BuildLog(context.Background(), ProductsFromEnv(), eventsFromEnv())
	})
}

// sweepSizes are the catalog sizes of the TopRated sweep.
func sweepSizes() []int {
	n := ProductsFromEnv()
	return []int{max(n/10, 1), n, 10 * n}
}

func sharedSweep(tb testing.TB, n int) *Sweep {
	sweepsMu.Lock()
	l := sweeps[n]
	if l == nil {
		l = &lazy[*Sweep]{}
		sweeps[n] = l
	}
	sweepsMu.Unlock()
	return l.get(tb, "sweep "+Human(n), func() (*Sweep, error) { return BuildSweep(context.Background(), n) })
}
