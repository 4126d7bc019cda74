package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
	"github.com/cqrskit/cqrs/readmodel/redisstore/catalogredis"
	"github.com/cqrskit/cqrs/store"
)

// The Redis benchmarks need a Redis server (CQRSKIT_REDIS_ADDR) and skip
// without one. Every fixture lives under its own random key prefix,
// deleted when the process ends.

// redisClient returns the shared client, or skips.
func redisClient(tb testing.TB) *redis.Client {
	addr := os.Getenv("CQRSKIT_REDIS_ADDR")
	if addr == "" {
		tb.Skip("CQRSKIT_REDIS_ADDR not set")
	}
	return benchRedis.get(tb, "redis client", func() (*redis.Client, error) {
		c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
		return c, c.Ping(context.Background()).Err()
	})
}

var (
	benchRedis   = lazy[*redis.Client]{close: func(c *redis.Client) { c.Close() }}
	redisCatalog = lazy[*catalogredis.Views]{}
	redisApply   = lazy[*store.Memory]{close: func(m *store.Memory) { m.Close() }}
	redisPerEvt  = lazy[*store.Memory]{close: func(m *store.Memory) { m.Close() }}
	redisRanks   = map[int]*lazy[*redisstore.Ranking]{10_000: {}, 100_000: {}}
	memRanks     = map[int]*lazy[*readmodel.Ranking[string]]{10_000: {}, 100_000: {}}
)

// redisPrefix returns a fresh key prefix whose keys are deleted at the end
// of the process.
func redisPrefix(c *redis.Client) string {
	b := make([]byte, 6)
	rand.Read(b)
	p := "cqrskit-bench-" + hex.EncodeToString(b)
	cleanupsMu.Lock()
	cleanups = append(cleanups, func() {
		ctx := context.Background()
		it := c.Scan(ctx, 0, p+":*", 1000).Iterator()
		for it.Next(ctx) {
			c.Unlink(ctx, it.Val())
		}
	})
	cleanupsMu.Unlock()
	return p
}

// sharedRedisCatalog projects the shared catalog's log into Redis with
// catalogredis (once).
func sharedRedisCatalog(b *testing.B) *catalogredis.Views {
	c := redisClient(b)
	cat := sharedCatalog(b)
	return redisCatalog.get(b, "redis catalog", func() (*catalogredis.Views, error) {
		ctx := context.Background()
		v, err := catalogredis.New(c, redisPrefix(c))
		if err != nil {
			return nil, err
		}
		r := projection.NewRunner(cat.Store, projection.WithBatchSize(1024))
		defer r.Close()
		if err := r.Add(v.Projector(), projection.AsAsync(), projection.WithVersion(catalog.ViewsVersion)); err != nil {
			return nil, err
		}
		if err := r.Start(ctx); err != nil {
			return nil, err
		}
		return v, r.WaitFor(ctx, catalogredis.Name, cat.SeedHead)
	})
}

// redisBytesPerProduct sums MEMORY USAGE over the views' keys.
func redisBytesPerProduct(b *testing.B, c *redis.Client, v *catalogredis.Views, products int) float64 {
	ctx := context.Background()
	ns := v.Namespace()
	var total int64
	it := c.Scan(ctx, 0, ns.Prefix()+":"+ns.Projector()+":*", 1000).Iterator()
	for it.Next(ctx) {
		n, err := c.MemoryUsage(ctx, it.Val(), 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	return float64(total) / float64(products)
}

// BenchmarkRedis: Redis read models against the in-memory ones (and the
// PostgreSQL 5-table JOIN) in one run.
func BenchmarkRedis(b *testing.B) {
	ctx := context.Background()
	b.Run("GetProduct", func(b *testing.B) {
		c := sharedCatalog(b)
		n := len(c.IDs)
		readers := map[string]func(i int) int64{
			"cqrskit": localReader(b, c, "cqrskit"),
		}
		rv := sharedRedisCatalog(b)
		readers["redis"] = func(i int) int64 {
			v, _, err := rv.Product(ctx, c.IDs[i])
			if err != nil {
				panic(err)
			}
			return v.PriceCents
		}
		for _, impl := range []string{"cqrskit", "redis", "postgres"} {
			b.Run("mode=serial/impl="+impl, func(b *testing.B) {
				read := readers[impl]
				if impl == "postgres" {
					read = localReader(b, c, "postgres") // skips without PostgreSQL
				}
				rnd := newRNG(3)
				var local int64
				b.ReportAllocs()
				for b.Loop() {
					local += read(rnd.intn(n))
				}
				sink.Add(local)
				rate(b, b.N, "reads/s")
				if impl == "redis" {
					b.ReportMetric(redisBytesPerProduct(b, redisClient(b), rv, n), "redis-B/product")
				}
			})
		}
		b.Run("mode=parallel/impl=redis", func(b *testing.B) {
			var seeds atomic.Uint64
			b.SetParallelism(8) // network-bound: more goroutines than cores
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				rnd := newRNG(100 + seeds.Add(1))
				var local int64
				for pb.Next() {
					local += readers["redis"](rnd.intn(n))
				}
				sink.Add(local)
			})
			rate(b, b.N, "reads/s")
		})
	})
	// TopRated10 at two catalog sizes: the cost must not grow with the
	// size (a sorted set's range read is O(log n + 10)).
	b.Run("TopRated10", func(b *testing.B) {
		for _, size := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("products=%s/impl=cqrskit", Human(size)), func(b *testing.B) {
				r := memRanking(b, size)
				buf := make([]readmodel.Ranked[string], 0, 10)
				b.ReportAllocs()
				for b.Loop() {
					buf = r.Top(10, buf[:0])
				}
				sink.Add(int64(len(buf)))
				rate(b, b.N, "queries/s")
			})
			b.Run(fmt.Sprintf("products=%s/impl=redis", Human(size)), func(b *testing.B) {
				r := redisRanking(b, size)
				buf := make([]readmodel.Ranked[string], 0, 10)
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if buf, err = r.Top(ctx, 10, buf[:0]); err != nil || len(buf) != 10 {
						b.Fatal(len(buf), err)
					}
				}
				rate(b, b.N, "queries/s")
			})
		}
	})
	// Apply: a runner catches up with a synthetic catalog log into Redis
	// read models (per-product average and recent reviews, prices, stream
	// versions) through the exactly-once projector: one EVALSHA per
	// runner batch of 1,024 events, against one round trip per event
	// (batch=1) on a smaller log. One op is the whole log.
	b.Run("Apply", func(b *testing.B) {
		total := min(eventsFromEnv(), 200_000)
		perEvent := min(total, 20_000)
		for _, tc := range []struct {
			batch, events int
			log           *lazy[*store.Memory]
		}{{1024, total, &redisApply}, {1, perEvent, &redisPerEvt}} {
			b.Run(fmt.Sprintf("events=%s/batch=%d/impl=redis", Human(tc.events), tc.batch), func(b *testing.B) {
				c := redisClient(b)
				lg := tc.log.get(b, "log "+Human(tc.events), func() (*store.Memory, error) {
					return BuildLog(ctx, max(tc.events/10, 1), tc.events)
				})
				head, _ := lg.Head(ctx)
				b.ReportAllocs()
				for b.Loop() {
					applyOnce(b, c, lg, head, tc.batch)
				}
				rate(b, b.N*int(head), "events/s")
			})
		}
	})
}

// applyOnce projects lg into a fresh namespace with runner batches of
// batch events.
func applyOnce(b *testing.B, c *redis.Client, lg store.Log, head event.Position, batch int) {
	ctx := context.Background()
	ns, err := redisstore.NewNamespace(c, redisPrefix(c), "apply")
	if err != nil {
		b.Fatal(err)
	}
	prices := redisstore.NewStore[string, int64](ns, "prices")
	versions := redisstore.NewStore[string, uint64](ns, "versions")
	ratings := redisstore.NewAverages(ns, "ratings")
	recent := redisstore.NewRecent[string](ns, "recent", catalog.RecentReviews)
	p := redisstore.NewProjector(ns, func(ctx context.Context, _ *redisstore.Tx, rec event.Record) error {
		switch e := rec.Data.(type) {
		case catalog.ReviewSubmitted:
			if err := ratings.Add(ctx, e.ProductID, int64(e.Rating)); err != nil {
				return err
			}
			return recent.Push(ctx, e.ProductID, e.ReviewID)
		case catalog.PriceChanged:
			return prices.Put(ctx, e.ProductID, e.NewCents)
		}
		return versions.Put(ctx, rec.Stream, rec.Version)
	})
	r := projection.NewRunner(lg, projection.WithBatchSize(batch))
	defer r.Close()
	if err := r.Add(p, projection.AsAsync()); err != nil {
		b.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		b.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := r.WaitFor(wctx, "apply", head); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	// Free the memory before the next op, outside the timing.
	deleteNamespace(c, ns)
	b.StartTimer()
}

func deleteNamespace(c *redis.Client, ns *redisstore.Namespace) {
	ctx := context.Background()
	it := c.Scan(ctx, 0, ns.Prefix()+":*", 1000).Iterator()
	for it.Next(ctx) {
		c.Unlink(ctx, it.Val())
	}
}

// rankScores gives product i of a ranking of size n a rating-like score
// with many ties, the same for both implementations.
func rankScores(n int, fn func(id string, score float64)) {
	rnd := mrand.New(mrand.NewPCG(uint64(n), 7))
	for i := range n {
		fn("p-"+strconv.Itoa(i), float64(10+rnd.IntN(41))/10)
	}
}

func memRanking(b *testing.B, n int) *readmodel.Ranking[string] {
	return memRanks[n].get(b, "ranking "+Human(n), func() (*readmodel.Ranking[string], error) {
		r := readmodel.NewRanking[string]()
		rankScores(n, r.Set)
		return r, nil
	})
}

// redisRanking fills a ranking of n products, with writes pipelined
// through one projector batch.
func redisRanking(b *testing.B, n int) *redisstore.Ranking {
	c := redisClient(b)
	return redisRanks[n].get(b, "redis ranking "+Human(n), func() (*redisstore.Ranking, error) {
		ctx := context.Background()
		ns, err := redisstore.NewNamespace(c, redisPrefix(c), "rank")
		if err != nil {
			return nil, err
		}
		r := redisstore.NewRanking(ns, "top")
		p := redisstore.NewProjector(ns, func(ctx context.Context, _ *redisstore.Tx, rec event.Record) error {
			var err error
			lo := int(rec.Position-1) * 10_000
			i := 0
			rankScores(n, func(id string, score float64) {
				if i >= lo && i < lo+10_000 && err == nil {
					err = r.Set(ctx, id, score)
				}
				i++
			})
			return err
		})
		for pos := event.Position(1); int(pos-1)*10_000 < n; pos++ {
			if err := p.Handle(ctx, event.Record{Position: pos}); err != nil {
				return nil, err
			}
			if err := p.FlushBatch(ctx, pos); err != nil {
				return nil, err
			}
		}
		return r, nil
	})
}
