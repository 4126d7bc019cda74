package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
	"github.com/cqrskit/cqrs/store/storetest"
)

// TestLargeUnitOfWork appends thousands of events over several streams,
// interleaved, with one Update: every event lands once, in record order,
// each stream's versions are 1..n, and Update returns the last position.
func TestLargeUnitOfWork(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	const n = 5000
	streams := []string{"c", "a", "b"} // not in sorted order
	pos, err := st.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			tx.Record(streams[i%len(streams)], Tick{Seq: i})
		}
		return nil
	})
	require.NoError(t, err)

	recs := readUntil(t, st, n)
	assert.Equal(t, pos, recs[n-1].Position, "Update returns the position of the last event")
	next := map[string]uint64{}
	ids := map[uuid.UUID]bool{}
	for i, r := range recs {
		require.Equal(t, uuid.Version(4), r.ID.Version(), "record %d: id %v", i, r.ID)
		require.Equal(t, uuid.RFC4122, r.ID.Variant(), "record %d: id %v", i, r.ID)
		require.False(t, ids[r.ID], "record %d: id %v repeated", i, r.ID)
		ids[r.ID] = true
		require.Equal(t, Tick{Seq: i}, r.Data, "record %d out of record order", i)
		require.Equal(t, streams[i%len(streams)], r.Stream)
		next[r.Stream]++
		require.Equal(t, next[r.Stream], r.Version, "record %d: stream versions are contiguous", i)
	}
	for _, s := range streams {
		assert.Equal(t, next[s], streamVersion(t, st, s), s)
	}
}

// TestPinnedAndUnpinnedStreamsInOneUnit: a unit of work that appends to
// streams with different committed heads, some pinned by ExpectVersion and
// some not, sorted between each other, continues each stream from its own
// head; so does one whose streams are all pinned.
func TestPinnedAndUnpinnedStreamsInOneUnit(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	heads := map[string]int{"a": 2, "b": 3, "c": 1, "e": 4}
	_, err := st.Update(ctx, func(tx store.Tx) error {
		for s, n := range heads {
			for i := range n {
				tx.Record(s, Tick{Seq: i})
			}
		}
		return nil
	})
	require.NoError(t, err)

	// b and e pinned, a, c and d (new) not; in sort order: a b c d e.
	order := []string{"d", "e", "c", "b", "a", "c", "e", "d", "b", "a", "d"}
	_, err = st.Update(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.ExpectVersion("b", 3))
		require.NoError(t, tx.ExpectVersion("e", 4))
		for i, s := range order {
			tx.Record(s, Tick{Writer: 1, Seq: i})
		}
		return nil
	})
	require.NoError(t, err)
	// Only pinned streams: the unit has no unpinned stream to look up.
	_, err = st.Update(ctx, func(tx store.Tx) error {
		require.NoError(t, tx.ExpectVersion("c", 3))
		require.NoError(t, tx.ExpectVersion("a", 4))
		tx.Record("c", Tick{Writer: 2})
		tx.Record("a", Tick{Writer: 2})
		return nil
	})
	require.NoError(t, err)

	recs := readUntil(t, st, 10+len(order)+2)
	next := map[string]uint64{}
	for s, n := range heads {
		next[s] = uint64(n)
	}
	for i, r := range recs[10:] {
		next[r.Stream]++
		require.Equal(t, next[r.Stream], r.Version, "record %d on %s", i, r.Stream)
		if i < len(order) {
			require.Equal(t, order[i], r.Stream, "record %d", i)
			require.Equal(t, Tick{Writer: 1, Seq: i}, r.Data, "record %d", i)
		}
	}
	assert.Equal(t, map[string]uint64{"a": 5, "b": 5, "c": 4, "d": 3, "e": 6}, next)
}

// TestConflictInLargeUnitWritesNothing: a unit of work with many events on
// several streams, one of which a concurrent writer took, commits none of
// them and none of its rows, and reports the stream that lost.
func TestConflictInLargeUnitWritesNothing(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	rows := store.NewTable[string, int](st, "t")
	_, err := st.Update(ctx, func(tx store.Tx) error {
		if _, err := rows.Put(tx, "k", 1); err != nil {
			return err
		}
		if err := tx.ExpectVersion("a", 0); err != nil {
			return err
		}
		// A concurrent writer takes version 1 of "a" and commits.
		_, err := st.Update(ctx, func(tx store.Tx) error {
			tx.Record("a", Tick{Writer: 2})
			return nil
		})
		require.NoError(t, err)
		for i := range 100 {
			tx.Record("b", Tick{Seq: i}) // sorts after "a"... and
			tx.Record("a", Tick{Seq: i})
			tx.Record("0", Tick{Seq: i}) // ...this before it
		}
		return nil
	})
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, store.ConflictError{Key: "a", Expected: 0, Actual: 1}, *ce)

	for s, want := range map[string]uint64{"a": 1, "b": 0, "0": 0} {
		assert.Equal(t, want, streamVersion(t, st, s), s)
	}
	_, err = st.Update(ctx, func(tx store.Tx) error {
		_, _, err := rows.Get(tx, "k")
		return err
	})
	assert.ErrorIs(t, err, store.ErrNotFound, "the unit's row rolled back with its events")
	recs := readUntil(t, st, 1)
	assert.Equal(t, Tick{Writer: 2}, recs[0].Data)
}

// TestBlindAppendRetriesInAFreshTransaction: a unit of work that ran no
// statement before its commit appends in a transaction of its own; when a
// concurrent writer takes its stream's next version, it retries in a new one
// and lands after it.
func TestBlindAppendRetriesInAFreshTransaction(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	type hold struct{}
	appended, release, firstDone := make(chan struct{}), make(chan struct{}), make(chan error)
	pgstore.SetBeforeCommit(st, func(ctx context.Context) {
		if ctx.Value(hold{}) != nil {
			close(appended)
			<-release
		}
	})
	go func() {
		_, err := st.Update(context.WithValue(ctx, hold{}, true), func(tx store.Tx) error {
			tx.Record("s", Tick{Writer: 1})
			return nil
		})
		firstDone <- err
	}()
	<-appended
	secondDone := make(chan error)
	go func() {
		_, err := st.Update(ctx, func(tx store.Tx) error {
			tx.Record("s", Tick{Writer: 2})
			tx.Record("s", Tick{Writer: 2, Seq: 1})
			return nil
		})
		secondDone <- err
	}()
	// The second writer has appended version 1 too and waits on the
	// first one's index entry; only then does the first commit.
	waitForLockWaiter(t, pool)
	close(release)
	require.NoError(t, <-firstDone)
	require.NoError(t, <-secondDone)

	recs := readUntil(t, st, 3)
	for i, want := range []Tick{{Writer: 1}, {Writer: 2}, {Writer: 2, Seq: 1}} {
		assert.Equal(t, want, recs[i].Data)
		assert.EqualValues(t, i+1, recs[i].Version)
	}
}

// waitForLockWaiter returns once a session of the test database waits for
// a lock.
func waitForLockWaiter(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`).Scan(&n)
		require.NoError(t, err)
		if n > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSQLWhenBeginFails: the transaction begins when the handler first asks
// for it; when it cannot, the handler's statements and Update fail with the
// cause.
func TestSQLWhenBeginFails(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx, cancel := context.WithCancel(context.Background())
	var execErr error
	_, err := st.Update(ctx, func(tx store.Tx) error {
		cancel()
		sqlTx, ok := pgstore.SQL(tx)
		require.True(t, ok)
		_, execErr = sqlTx.Exec(ctx, "SELECT 1")
		tx.Record("s", Tick{})
		return nil
	})
	require.ErrorIs(t, execErr, context.Canceled)
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, streamVersion(t, st, "s"))
}

// roundTrips counts the statements and batches the connections of a pool
// send, each one round trip to the server.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// TestRoundTripsPerUpdate pins down the round trips of common units of work:
// BEGIN goes with the first statement and COMMIT with the append. A tracer
// counts pgx's round trips; with one, the append goes through pgx's batch.
func TestRoundTripsPerUpdate(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testURL(t))
	require.NoError(t, err)
	var rt roundTrips
	cfg.ConnConfig.Tracer = &rt
	cfg.MaxConns = 1 // one connection: statements prepared once are cached
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	checkRoundTrips(t, pool, &rt.n)
}

// TestRoundTripsPerUpdateUntraced is TestRoundTripsPerUpdate without a
// tracer, so that the append bypasses pgx's batch (sendAppendRaw): the
// connection counts its writes, one per round trip.
func TestRoundTripsPerUpdateUntraced(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testURL(t))
	require.NoError(t, err)
	var writes atomic.Int64
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, writes: &writes}, nil
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	checkRoundTrips(t, pool, &writes)
}

// countingConn counts the writes to a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// checkRoundTrips runs common units of work on a store of pool, which has
// one connection, and checks the round trips n counts for each.
func checkRoundTrips(t *testing.T, pool *pgxpool.Pool, n *atomic.Int64) {
	st := newStore(t, pool, pgstore.WithNotify(false))
	rows := store.NewTable[string, int](st, "t")
	ctx := context.Background()

	cases := []struct {
		name string
		want int64
		fn   func(tx store.Tx) error
	}{
		{"blind append", 1, func(tx store.Tx) error {
			tx.Record("s", Tick{})
			return nil
		}},
		{"blind append of 100 events", 1, func(tx store.Tx) error {
			for i := range 100 {
				tx.Record(fmt.Sprint("s", i%3), Tick{Seq: i})
			}
			return nil
		}},
		{"expected version and append", 2, func(tx store.Tx) error {
			v, err := tx.StreamVersion("s")
			if err != nil {
				return err
			}
			if err := tx.ExpectVersion("s", v); err != nil {
				return err
			}
			tx.Record("s", Tick{})
			return nil
		}},
		{"row write and append", 2, func(tx store.Tx) error {
			if _, err := rows.Put(tx, "k", 1); err != nil {
				return err
			}
			tx.Record("s", Tick{})
			return nil
		}},
		{"no events", 1, func(store.Tx) error { return nil }},
		{"read without events", 2, func(tx store.Tx) error {
			_, err := tx.StreamVersion("s")
			return err
		}},
	}
	for _, c := range cases {
		// The first run prepares the statements; the second is counted.
		for range 2 {
			n.Store(0)
			_, err := st.Update(ctx, c.fn)
			require.NoError(t, err, c.name)
		}
		assert.Equal(t, c.want, n.Load(), c.name)
	}
}

// TestFailedFirstStatementEndsTransaction: a unit of work whose first
// statement (sent with BEGIN) fails is rolled back, and its connection goes
// back to the pool to be used again rather than dropped.
func TestFailedFirstStatementEndsTransaction(t *testing.T) {
	pool := newPool(t, 1)
	st := newStore(t, pool)
	ctx := context.Background()
	conns := pool.Stat().NewConnsCount()
	errStop := errors.New("stop")
	for range 3 {
		_, err := st.Update(ctx, func(tx store.Tx) error {
			_, err := tx.(store.RowTx).PutRow(ctx, "t", "bad\x00key", []byte(`{}`))
			require.ErrorIs(t, err, store.ErrInvalid)
			return errStop
		})
		require.ErrorIs(t, err, errStop)
	}
	_, err := st.Update(ctx, func(tx store.Tx) error {
		tx.Record("s", Tick{})
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, conns, pool.Stat().NewConnsCount(), "no connection was dropped")
	recs := readUntil(t, st, 1)
	assert.EqualValues(t, 1, recs[0].Version)
}

// TestBlindAppendsNeverConflict has many writers append to one stream
// without ExpectVersion, each holding its transaction open a moment after
// the append, in both the fresh-transaction form and the savepoint form (a
// table write first). Every writer after the first in a round loses the race
// for the stream's next version and must retry; the package documents that
// blind appends do not fail, however often they lose. Every event lands, at
// contiguous versions.
func TestBlindAppendsNeverConflict(t *testing.T) {
	const writers, units = 12, 40
	pool := newPool(t, writers+4)
	st := newStore(t, pool)
	pgstore.SetBeforeCommit(st, func(context.Context) { time.Sleep(time.Millisecond) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rows := store.NewTable[int, int](st, "rows")
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range units {
				_, err := st.Update(ctx, func(tx store.Tx) error {
					if w%2 == 1 { // the savepoint form
						if _, err := rows.Put(tx, w, i); err != nil {
							return err
						}
					}
					tx.Record("hot", Tick{Writer: w, Seq: i})
					return nil
				})
				if err != nil {
					t.Errorf("writer %d, unit %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	recs, err := st.Read(ctx, 0, make([]event.Record, 0, writers*units+1))
	require.NoError(t, err)
	require.Equal(t, writers*units, len(recs), "events in the log")
	versions := make([]int, 0, len(recs))
	for _, r := range recs {
		versions = append(versions, int(r.Version))
	}
	slices.Sort(versions)
	for i, v := range versions {
		require.Equal(t, i+1, v, "stream versions must be contiguous")
	}
}

// TestAppendInEveryQueryExecMode appends through pools in each of pgx's
// query modes that describe statements (the others cannot encode the event
// ids, and never could), in which the append's array parameters go in
// pgstore's own array types. Payloads and stream names with characters
// that arrays quote and escape in text, several event types, pinned and
// unpinned streams: everything reads back as recorded.
func TestAppendInEveryQueryExecMode(t *testing.T) {
	for _, mode := range []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec,
	} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg, err := pgxpool.ParseConfig(testURL(t))
			require.NoError(t, err)
			cfg.MaxConns = 4
			cfg.ConnConfig.DefaultQueryExecMode = mode
			pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			st := newStore(t, pool)
			ctx := context.Background()

			names := []string{`plain`, `"quoted"`, `back\slash`, `{braces},comma`, `sp ace`, `NULL`, `ünï€ode`, ``, `<&>`}
			var want []event.Record
			for round := range 3 {
				_, err := st.Update(ctx, func(tx store.Tx) error {
					if round == 2 {
						// Pin one stream: it has round events of its own by now.
						if err := tx.ExpectVersion("s"+names[1], 2); err != nil {
							return err
						}
					}
					for i, name := range names {
						stream := "s" + names[(i+round)%len(names)]
						var e event.Event = storetest.Renamed{Name: name + fmt.Sprint(round)}
						if i%3 == 0 {
							e = Tick{Writer: round, Seq: i}
						}
						tx.Record(stream, e)
						want = append(want, event.Record{Stream: stream, Data: e})
					}
					return nil
				})
				require.NoError(t, err)
			}
			recs := readUntil(t, st, len(want))
			versions := map[string]uint64{}
			ids := map[uuid.UUID]bool{}
			for i, r := range recs {
				versions[want[i].Stream]++
				assert.Equal(t, want[i].Stream, r.Stream, "record %d", i)
				assert.Equal(t, want[i].Data, r.Data, "record %d", i)
				assert.Equal(t, versions[want[i].Stream], r.Version, "record %d", i)
				assert.Equal(t, uuid.Version(4), r.ID.Version(), "record %d", i)
				assert.False(t, ids[r.ID], "record %d: id repeated", i)
				ids[r.ID] = true
			}
		})
	}
}

// TestAppendAfterDeallocateAll: the append's statement is prepared once
// per connection; when a handler's SQL deallocates it behind pgx's back,
// at most the unit of work that finds it gone fails (the connection is
// dropped), the next one succeeds, and no event is lost or doubled.
func TestAppendAfterDeallocateAll(t *testing.T) {
	pool := newPool(t, 1) // one connection: the handler's and the append's
	st := newStore(t, pool)
	ctx := context.Background()
	record := func(seq int) error {
		_, err := st.Update(ctx, func(tx store.Tx) error {
			tx.Record("s", Tick{Seq: seq})
			return nil
		})
		return err
	}
	require.NoError(t, record(0))
	var want []int
	want = append(want, 0)
	for i := 1; i <= 3; i++ {
		_, err := pool.Exec(ctx, "DEALLOCATE ALL")
		require.NoError(t, err)
		if err := record(10 * i); err == nil {
			want = append(want, 10*i)
		} else {
			t.Logf("after DEALLOCATE ALL: %v", err)
		}
		require.NoError(t, record(10*i+1), "the unit of work after the one that found the statement gone")
		want = append(want, 10*i+1)
	}
	recs := readUntil(t, st, len(want))
	for i, r := range recs {
		assert.Equal(t, Tick{Seq: want[i]}, r.Data, "record %d", i)
		assert.Equal(t, uint64(i+1), r.Version, "record %d", i)
	}
	assert.Len(t, recs, len(want))
	head, err := st.Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, recs[len(recs)-1].Position, head, "nothing after the last expected record")
}
