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

// BenchmarkEventRowShapes prices, on the server alone, the rows that the
// 100-event append writes against the rows of BenchmarkAppend's baseline:
// each op inserts 100 server-built rows into every table shape below, one
// autocommitted INSERT ... SELECT per shape, the shapes taking turns so that
// all of them see the same machine. Nothing is encoded by the client, so
// the differences are row width, indexes and JSON parsing:
//
//   - plain: the baseline's table (bigserial key, stream, jsonb built by
//     jsonb_build_object);
//   - plain-parsed: the same table, its jsonb parsed from text as pgstore's is;
//   - events: pgstore's events table (LIKE ... INCLUDING ALL);
//   - events-no-stream-index: the same without UNIQUE (stream, version);
//   - events-json: the same with json instead of jsonb columns.
//
// µs/100rows per shape and each shape ÷ plain are reported.
func BenchmarkEventRowShapes(b *testing.B) {
	pool := newPool(b, 4)
	st := newStore(b, pool)
	ctx := context.Background()
	q := func(name string) string { return pgx.Identifier{st.Schema(), name}.Sanitize() }
	for _, ddl := range []string{
		"CREATE TABLE " + q("plain") + " (id bigserial PRIMARY KEY, stream text, data jsonb)",
		"CREATE TABLE " + q("plain_parsed") + " (id bigserial PRIMARY KEY, stream text, data jsonb)",
		"CREATE TABLE " + q("ev") + " (LIKE " + q("events") + " INCLUDING ALL)",
		"CREATE TABLE " + q("ev_noidx") + " (LIKE " + q("events") + " INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (position))",
		"CREATE TABLE " + q("ev_json") + ` (position bigint PRIMARY KEY, append_xid xid8 NOT NULL, id uuid NOT NULL,
			stream text NOT NULL, version bigint NOT NULL, type text NOT NULL, data json NOT NULL,
			metadata json NOT NULL DEFAULT '{}', recorded_at timestamptz NOT NULL, UNIQUE (stream, version))`,
	} {
		if _, err := pool.Exec(ctx, ddl); err != nil {
			b.Fatal(err)
		}
	}
	// $1 makes each op's positions, versions and ids new.
	event := func(table, cast string) string {
		return "INSERT INTO " + q(table) + ` (position, append_xid, id, stream, version, type, data, metadata, recorded_at)
			SELECT $1::bigint * 1000 + i, pg_current_xact_id(),
				('00000000-0000-4000-8000-' || lpad(($1::bigint * 1000 + i)::text, 12, '0'))::uuid,
				'writer-1', $1::bigint * 1000 + i, 'bench.tick',
				('{"writer":1,"seq":' || i || '}')::` + cast + `, '{}', now()
			FROM generate_series(1, 100) i`
	}
	shapes := []struct{ name, sql string }{
		{"plain", "INSERT INTO " + q("plain") + " (stream, data) SELECT 'writer-1', jsonb_build_object('w', 1, 's', i) FROM generate_series(1, 100 + 0 * $1::int) i"},
		{"plain-parsed", "INSERT INTO " + q("plain_parsed") + ` (stream, data) SELECT 'writer-1', ('{"writer":1,"seq":' || i || '}')::jsonb FROM generate_series(1, 100 + 0 * $1::int) i`},
		{"events", event("ev", "jsonb")},
		{"events-no-stream-index", event("ev_noidx", "jsonb")},
		{"events-json", event("ev_json", "json")},
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	took := make([]time.Duration, len(shapes))
	b.ResetTimer()
	for i := range b.N {
		for s, shape := range shapes {
			start := time.Now()
			if _, err := conn.Exec(ctx, shape.sql, i+1); err != nil {
				b.Fatalf("%s: %v", shape.name, err)
			}
			took[s] += time.Since(start)
		}
	}
	for s, shape := range shapes {
		b.ReportMetric(took[s].Seconds()*1e6/float64(b.N), "µs/100rows:"+shape.name)
		if s > 0 {
			b.ReportMetric(took[s].Seconds()/took[0].Seconds(), "÷plain:"+shape.name)
		}
	}
}
