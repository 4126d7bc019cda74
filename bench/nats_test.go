package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/event/natsbus"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// The NATS JetStream fan-out (event/natsbus): relay throughput from the
// in-memory log (pipelined vs one publish at a time), commit-to-replica
// latency, and follower catch-up. They need a JetStream server:
// CQRSKIT_BENCH_NATS_URL, else CQRSKIT_NATS_URL; skipped when neither is
// set. Each run writes to a stream of its own and deletes it.

type natsTick struct {
	N     int    `json:"n"`
	Label string `json:"label"`
}

func (natsTick) EventType() string { return "bench.tick" }

func natsJS(b *testing.B) jetstream.JetStream {
	b.Helper()
	url := os.Getenv("CQRSKIT_BENCH_NATS_URL")
	if url == "" {
		url = os.Getenv("CQRSKIT_NATS_URL")
	}
	if url == "" {
		b.Skip("CQRSKIT_BENCH_NATS_URL / CQRSKIT_NATS_URL not set: no NATS JetStream server")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		b.Fatal(err)
	}
	return js
}

// natsStream returns options naming a fresh stream, deleted at cleanup.
func natsStream(b *testing.B, js jetstream.JetStream) []natsbus.Option {
	buf := make([]byte, 6)
	_, _ = rand.Read(buf)
	name := "BENCH" + hex.EncodeToString(buf)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, name)
	})
	return []natsbus.Option{natsbus.WithStream(name), natsbus.WithSubjectPrefix("bench." + name)}
}

func natsRegistry(b *testing.B) *event.Registry {
	reg := event.NewRegistry()
	if err := event.Register[natsTick](reg); err != nil {
		b.Fatal(err)
	}
	return reg
}

// natsLog returns a store.Memory holding n records, 16 per unit of work.
func natsLog(b *testing.B, n int) *store.Memory {
	m := store.NewMemory()
	for i := 0; i < n; {
		k := min(16, n-i)
		if _, err := m.Update(context.Background(), func(tx store.Tx) error {
			for j := range k {
				tx.Record("tick/"+string(rune('a'+(i+j)%26)), natsTick{N: i + j, Label: "price changed"})
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		i += k
	}
	return m
}

// relayAll relays m to a fresh stream and returns when the stream holds
// all of it.
func relayAll(b *testing.B, js jetstream.JetStream, m *store.Memory, reg *event.Registry, opts []natsbus.Option) *natsbus.Relay {
	return natsRelay(b, js, m, reg, opts)
}

// natsRelay starts a relay from lg and returns when it has published what
// lg holds now.
func natsRelay(b *testing.B, js jetstream.JetStream, lg store.Log, reg *event.Registry, opts []natsbus.Option) *natsbus.Relay {
	ctx, cancel := context.WithCancel(context.Background())
	r := natsbus.NewRelay(js, lg, reg, opts...)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	head, err := lg.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for r.Status().Published < head {
		select {
		case err := <-done:
			b.Fatalf("relay stopped: %v", err)
		case <-time.After(100 * time.Microsecond):
		}
	}
	return r
}

func BenchmarkNATS(b *testing.B) {
	// Relay: b.N records from the in-memory log into a new stream.
	for _, impl := range []string{"async", "sync"} {
		b.Run("Relay/impl="+impl, func(b *testing.B) {
			js := natsJS(b)
			reg := natsRegistry(b)
			m := natsLog(b, b.N)
			opts := natsStream(b, js)
			if _, err := natsbus.EnsureStream(context.Background(), js, opts...); err != nil {
				b.Fatal(err)
			}
			if impl == "sync" {
				opts = append(opts, natsbus.WithSync())
			}
			b.ReportAllocs()
			b.ResetTimer()
			relayAll(b, js, m, reg, opts)
			b.StopTimer()
			rate(b, b.N, "events/s")
		})
	}

	// Commit to replica view: one event committed on the writer, relayed,
	// and applied by a runner on a Follower; the time until WaitFor on the
	// replica returns. impl=memory is the same runner following the
	// writer's log in-process, the floor. On PostgreSQL
	// (CQRSKIT_POSTGRES_URL): impl=pg-jetstream relays a pgstore log, and
	// impl=pg-direct is a reader following PostgreSQL itself through a
	// store of its own, as another process would.
	for _, impl := range []string{"jetstream", "memory", "pg-jetstream", "pg-direct"} {
		b.Run("CommitToReplica/impl="+impl, func(b *testing.B) {
			js := natsJS(b)
			reg := natsRegistry(b)
			var (
				st store.Store
				lg store.Log
			)
			switch impl {
			case "jetstream", "memory":
				m := store.NewMemory()
				st, lg = m, m
			default:
				w, r := natsPG(b, reg)
				st, lg = w, r
			}
			if impl == "jetstream" || impl == "pg-jetstream" {
				opts := natsStream(b, js)
				if _, err := natsbus.EnsureStream(context.Background(), js, opts...); err != nil {
					b.Fatal(err)
				}
				src := lg
				if impl == "pg-jetstream" {
					src = st.(store.Log) // the relay follows the writer's own store
				}
				natsRelay(b, js, src, reg, opts)
				f := natsbus.NewFollower(js, reg, opts...)
				b.Cleanup(func() { _ = f.Close() })
				lg = f
			}
			counter := &natsCounter{}
			runner := projection.NewRunner(lg)
			if err := runner.Add(counter, projection.AsAsync()); err != nil {
				b.Fatal(err)
			}
			if err := runner.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = runner.Close() })
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				pos, err := st.Update(ctx, func(tx store.Tx) error {
					tx.Record("tick/x", natsTick{N: i})
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = runner.WaitFor(wctx, "", pos)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			sink.Add(int64(counter.n))
		})
	}

	// Catch-up: a new Follower reads b.N records from the stream, in
	// batches of DefaultReadBatch, as a runner starting from zero does.
	b.Run("CatchUp/impl=follower", func(b *testing.B) {
		js := natsJS(b)
		reg := natsRegistry(b)
		m := natsLog(b, b.N)
		opts := natsStream(b, js)
		relayAll(b, js, m, reg, opts)
		f := natsbus.NewFollower(js, reg, opts...)
		b.Cleanup(func() { _ = f.Close() })
		buf := make([]event.Record, 0, store.DefaultReadBatch)
		b.ReportAllocs()
		b.ResetTimer()
		var after event.Position
		for n := 0; n < b.N; {
			recs, err := f.Read(context.Background(), after, buf[:0])
			if err != nil {
				b.Fatal(err)
			}
			if len(recs) == 0 {
				b.Fatalf("follower stopped at %d of %d", n, b.N)
			}
			n += len(recs)
			after = recs[len(recs)-1].Position
			clear(recs)
		}
		b.StopTimer()
		rate(b, b.N, "events/s")
	})
}

// natsCounter is the cheapest projector: the latency measured is the
// pipeline's, not the view's.
type natsCounter struct{ n int }

func (*natsCounter) Name() string { return "count" }

func (c *natsCounter) Handle(context.Context, event.Record) error {
	c.n++
	return nil
}

// natsPG returns a pgstore writer and, on another pool, a second store on
// the same schema for a reader (as another process would have), or skips
// when CQRSKIT_POSTGRES_URL is not set. The schema is dropped at cleanup.
func natsPG(b *testing.B, reg *event.Registry) (writer, reader *pgstore.Store) {
	url := os.Getenv("CQRSKIT_POSTGRES_URL")
	if url == "" {
		b.Skip("CQRSKIT_POSTGRES_URL not set")
	}
	ctx := context.Background()
	buf := make([]byte, 6)
	_, _ = rand.Read(buf)
	schema := "bench_nats_" + hex.EncodeToString(buf)
	pools := make([]*pgxpool.Pool, 2)
	stores := make([]*pgstore.Store, 2)
	for i := range pools {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			b.Skipf("PostgreSQL: %v", err)
		}
		pools[i] = pool
		st, err := pgstore.New(ctx, pool, reg, pgstore.WithSchema(schema))
		if err != nil {
			pool.Close()
			b.Fatal(err)
		}
		stores[i] = st
	}
	b.Cleanup(func() {
		for _, st := range stores {
			_ = st.Close()
		}
		_, _ = pools[0].Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		for _, p := range pools {
			p.Close()
		}
	})
	return stores[0], stores[1]
}
