package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// BenchmarkAppend measures commit throughput: b.N units of work, each
// recording perUpdate events on its writer's own stream, spread over
// concurrent writers. events/s is the figure to compare. The baseline cases
// are hand-written pgx transactions that insert the same number of rows into
// a plain table (BEGIN, one multi-row INSERT, COMMIT): what any durable write
// costs on this server, run in the same process and minute, so the ratio to
// it is what pgstore adds. notify=false shows what announcing commits costs.
func BenchmarkAppend(b *testing.B) {
	pool := newPool(b, 40)
	cases := []struct {
		writers, perUpdate int
		mode               string
	}{
		{1, 1, "baseline"}, {1, 1, "notify"}, {1, 1, "quiet"},
		{8, 1, "baseline"}, {8, 1, "notify"}, {8, 1, "quiet"},
		{32, 1, "baseline"}, {32, 1, "notify"}, {32, 1, "quiet"},
		{1, 100, "baseline"}, {1, 100, "notify"},
		{8, 100, "baseline"}, {8, 100, "notify"},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("events=%d/writers=%d/%s", c.perUpdate, c.writers, c.mode), func(b *testing.B) {
			st := newStore(b, pool, pgstore.WithNotify(c.mode == "notify"))
			ctx := context.Background()
			plain := pgx.Identifier{st.Schema(), "plain"}.Sanitize()
			if _, err := pool.Exec(ctx, "CREATE TABLE "+plain+" (id bigserial PRIMARY KEY, stream text, data jsonb)"); err != nil {
				b.Fatal(err)
			}
			unit := func(w int, stream string) error {
				if c.mode == "baseline" {
					return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						_, err := tx.Exec(ctx, "INSERT INTO "+plain+" (stream, data) SELECT $1, jsonb_build_object('w', $2::int, 's', i) FROM generate_series(1, $3) i",
							stream, w, c.perUpdate)
						return err
					})
				}
				_, err := st.Update(ctx, func(tx store.Tx) error {
					for i := range c.perUpdate {
						tx.Record(stream, Tick{Writer: w, Seq: i})
					}
					return nil
				})
				return err
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range c.writers {
				wg.Go(func() {
					stream := fmt.Sprint("writer-", w)
					for next.Add(1) <= int64(b.N) {
						if err := unit(w, stream); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N*c.perUpdate)/elapsed.Seconds(), "events/s")
		})
	}
}

// BenchmarkFollowerLatency measures commit-to-read latency: from the moment
// a unit of work sends COMMIT until a follower's Read returns the event. The
// follower has its own Store on the same schema, as another process would,
// so it learns of commits through NOTIFY, or with notify=false only through
// its poll (250ms).
func BenchmarkFollowerLatency(b *testing.B) {
	pool := newPool(b, 8)
	for _, notify := range []bool{true, false} {
		b.Run(fmt.Sprintf("notify=%v", notify), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			writer := newStore(b, pool, pgstore.WithNotify(notify))
			var committing atomic.Int64
			pgstore.SetBeforeCommit(writer, func(context.Context) { committing.Store(time.Now().UnixNano()) })
			follower, err := pgstore.New(ctx, pool, testRegistry(b), pgstore.WithSchema(writer.Schema()),
				pgstore.WithPollInterval(250*time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			defer follower.Close()
			got := make(chan time.Time, 1)
			go func() {
				var after event.Position
				buf := make([]event.Record, 0, 16)
				for ctx.Err() == nil {
					recs, err := follower.Read(ctx, after, buf[:0])
					if err != nil {
						return
					}
					for _, r := range recs {
						got <- time.Now()
						after = r.Position
					}
					if len(recs) == 0 && follower.Wait(ctx, after) != nil {
						return
					}
				}
			}()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				if _, err := writer.Update(ctx, func(tx store.Tx) error {
					tx.Record("s", Tick{Seq: i})
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, (<-got).Sub(time.Unix(0, committing.Load())))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkAppendPaired measures what BenchmarkAppend does, pgstore (with
// notifications) against the same hand-written baseline, but alternates the
// two in short slices of units of work within one benchmark, so that both
// see the same load: on a shared machine, the ratio (pgstore÷baseline, of
// events/s) is then far steadier than the ratio of two separate runs. b.N
// counts units of work of each kind.
//
// The baseline's rows are not pgstore's: three columns and one index, with
// payloads the server builds itself. A third kind, "rows", inserts rows
// like pgstore's by hand (client-encoded payloads and ids, stream, version,
// type, metadata, time; UNIQUE (stream, version); a sequence for the
// position), with the baseline's BEGIN, INSERT, COMMIT: pgstore÷rows is what
// the gap-safe positions and the store's bookkeeping cost over a plain
// event table.
func BenchmarkAppendPaired(b *testing.B) {
	pool := newPool(b, 40)
	for _, c := range []struct{ writers, perUpdate int }{{1, 1}, {8, 1}, {1, 100}, {8, 100}} {
		b.Run(fmt.Sprintf("events=%d/writers=%d", c.perUpdate, c.writers), func(b *testing.B) {
			st := newStore(b, pool)
			ctx := context.Background()
			plain := pgx.Identifier{st.Schema(), "plain"}.Sanitize()
			if _, err := pool.Exec(ctx, "CREATE TABLE "+plain+" (id bigserial PRIMARY KEY, stream text, data jsonb)"); err != nil {
				b.Fatal(err)
			}
			baseline := func(w int, stream string) error {
				return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, "INSERT INTO "+plain+" (stream, data) SELECT $1, jsonb_build_object('w', $2::int, 's', i) FROM generate_series(1, $3) i",
						stream, w, c.perUpdate)
					return err
				})
			}
			rowsTable := pgx.Identifier{st.Schema(), "plain_events"}.Sanitize()
			if _, err := pool.Exec(ctx, "CREATE TABLE "+rowsTable+` (position bigserial PRIMARY KEY,
				id uuid NOT NULL, stream text NOT NULL, version bigint NOT NULL, type text NOT NULL,
				data jsonb NOT NULL, metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL,
				UNIQUE (stream, version))`); err != nil {
				b.Fatal(err)
			}
			versions := make([]int64, c.writers) // each writer owns its stream
			rows := func(w int, stream string) error {
				ids := make([]uuid.UUID, c.perUpdate)
				datas := make([]string, c.perUpdate)
				for i := range c.perUpdate {
					d, err := json.Marshal(Tick{Writer: w, Seq: i})
					if err != nil {
						return err
					}
					ids[i], datas[i] = uuid.New(), string(d)
				}
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, "INSERT INTO "+rowsTable+` (id, stream, version, type, data, metadata, recorded_at)
						SELECT u.id, $1, $2 + u.n, $3, u.data::jsonb, '{}', $5
						FROM unnest($4::uuid[], $6::text[]) WITH ORDINALITY AS u(id, data, n)`,
						stream, versions[w], Tick{}.EventType(), ids, time.Now(), datas)
					return err
				})
				if err == nil {
					versions[w] += int64(c.perUpdate)
				}
				return err
			}
			cqrs := func(w int, stream string) error {
				_, err := st.Update(ctx, func(tx store.Tx) error {
					for i := range c.perUpdate {
						tx.Record(stream, Tick{Writer: w, Seq: i})
					}
					return nil
				})
				return err
			}
			// slice runs n units of work of one kind over the writers and
			// returns how long they took.
			slice := func(n int, unit func(int, string) error) time.Duration {
				var next atomic.Int64
				var wg sync.WaitGroup
				start := time.Now()
				for w := range c.writers {
					wg.Go(func() {
						stream := fmt.Sprint("writer-", w)
						for next.Add(1) <= int64(n) {
							if err := unit(w, stream); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				return time.Since(start)
			}
			per := 4 * c.writers // units of work per slice: a few ms
			var tBase, tRows, tCQRS time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; done += per {
				n := min(per, b.N-done)
				tBase += slice(n, baseline)
				tRows += slice(n, rows)
				tCQRS += slice(n, cqrs)
			}
			events := float64(b.N * c.perUpdate)
			b.ReportMetric(events/tBase.Seconds(), "baseline-events/s")
			b.ReportMetric(events/tRows.Seconds(), "rows-events/s")
			b.ReportMetric(events/tCQRS.Seconds(), "pgstore-events/s")
			b.ReportMetric(tBase.Seconds()/tCQRS.Seconds(), "pgstore÷baseline")
			b.ReportMetric(tRows.Seconds()/tCQRS.Seconds(), "pgstore÷rows")
		})
	}
}
