package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

func TestNewMigratesConcurrently(t *testing.T) {
	pool := newPool(t, 16)
	schema := newSchema(t, pool)
	reg := testRegistry(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			st, err := pgstore.New(context.Background(), pool, reg, pgstore.WithSchema(schema))
			if err == nil {
				err = st.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var n int
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT count(*) FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&n))
	assert.Equal(t, pgstore.MigrationCount(), n, "each migration is recorded once")
}

// barrier makes n units of work meet inside their transactions, which the
// in-memory store (serialised) could never do.
type barrier struct {
	wg sync.WaitGroup
}

func newBarrier(n int) *barrier {
	b := &barrier{}
	b.wg.Add(n)
	return b
}

func (b *barrier) meet() { b.wg.Done(); b.wg.Wait() }

func TestExpectVersionDecidedByUniqueConstraint(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	b := newBarrier(2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = st.Update(ctx, func(tx store.Tx) error {
				// Both pass the early check: neither has committed yet.
				if err := tx.ExpectVersion("s", 0); err != nil {
					return err
				}
				b.meet()
				tx.Record("s", Tick{Writer: i})
				return nil
			})
		})
	}
	wg.Wait()
	var failed error
	for _, err := range errs {
		if err != nil {
			require.Nil(t, failed, "both writers failed: %v / %v", failed, err)
			failed = err
		}
	}
	require.Error(t, failed, "both writers at version 0 committed")
	var ce *store.ConflictError
	require.ErrorAs(t, failed, &ce)
	assert.ErrorIs(t, failed, store.ErrConflict)
	assert.Equal(t, store.ConflictError{Key: "s", Expected: 0, Actual: 1}, *ce)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, failed, &pgErr, "the driver error stays reachable")
	assert.Equal(t, "23505", pgErr.Code)

	assert.EqualValues(t, 1, streamVersion(t, st, "s"))
}

func TestExpectVersionWithoutEventsRecheckedAtCommit(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	checked, appended := make(chan struct{}), make(chan struct{})
	go func() {
		<-checked
		_, err := st.Update(ctx, func(tx store.Tx) error {
			tx.Record("s", Tick{})
			return nil
		})
		assert.NoError(t, err)
		close(appended)
	}()
	_, err := st.Update(ctx, func(tx store.Tx) error {
		if err := tx.ExpectVersion("s", 0); err != nil {
			return err
		}
		close(checked)
		<-appended
		return nil
	})
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, store.ConflictError{Key: "s", Expected: 0, Actual: 1}, *ce)
}

func TestBlindAppendsRetryInsteadOfConflicting(t *testing.T) {
	pool := newPool(t, 16)
	st := newStore(t, pool)
	ctx := context.Background()
	const writers = 8
	b := newBarrier(writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			_, err := st.Update(ctx, func(tx store.Tx) error {
				if _, err := tx.StreamVersion("shared"); err != nil {
					return err
				}
				b.meet() // all read version 0, none pinned it
				tx.Record("shared", Tick{Writer: i})
				tx.Record("own-"+fmt.Sprint(i), Tick{Writer: i})
				return nil
			})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.EqualValues(t, writers, streamVersion(t, st, "shared"))
	recs := readUntil(t, st, 2*writers)
	versions := map[uint64]bool{}
	for _, r := range recs {
		if r.Stream == "shared" {
			versions[r.Version] = true
		} else {
			assert.EqualValues(t, 1, r.Version)
		}
	}
	assert.Len(t, versions, writers, "shared stream versions are 1..%d without holes or repeats", writers)
}

func TestHandlerSQLCommitsWithEvents(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	audit := pgx.Identifier{st.Schema(), "audit"}.Sanitize()
	_, err := pool.Exec(ctx, "CREATE TABLE "+audit+" (note text)")
	require.NoError(t, err)

	errNo := errors.New("no")
	_, err = st.Update(ctx, func(tx store.Tx) error {
		sqlTx, ok := pgstore.SQL(tx)
		require.True(t, ok)
		if _, err := sqlTx.Exec(ctx, "INSERT INTO "+audit+" VALUES ('rolled back')"); err != nil {
			return err
		}
		tx.Record("s", Tick{Seq: 1})
		return errNo
	})
	require.ErrorIs(t, err, errNo)
	pos, err := st.Update(ctx, func(tx store.Tx) error {
		sqlTx, _ := pgstore.SQL(tx)
		if _, err := sqlTx.Exec(ctx, "INSERT INTO "+audit+" VALUES ('kept')"); err != nil {
			return err
		}
		tx.Record("s", Tick{Seq: 2})
		return nil
	})
	require.NoError(t, err)

	var notes []string
	rows, _ := pool.Query(ctx, "SELECT note FROM "+audit)
	notes, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"kept"}, notes)
	recs := readUntil(t, st, 1)
	assert.Equal(t, pos, recs[0].Position)
	assert.Equal(t, Tick{Seq: 2}, recs[0].Data)

	_, ok := pgstore.SQL(nil)
	assert.False(t, ok)
}

func TestUnknownEventType(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	_, err := st.Update(ctx, func(tx store.Tx) error {
		tx.Record("s", unregistered{})
		return nil
	})
	require.ErrorIs(t, err, event.ErrUnknownType)
	head, err := st.Head(ctx)
	require.NoError(t, err)
	assert.Zero(t, head, "nothing committed")

	// A reader whose registry lacks a type stops at it instead of skipping.
	pos, err := st.Update(ctx, func(tx store.Tx) error {
		tx.Record("s", Tick{Seq: 1})
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, st.Wait(ctx, pos-1))
	other, err := pgstore.New(ctx, pool, event.NewRegistry(), pgstore.WithSchema(st.Schema()))
	require.NoError(t, err)
	defer other.Close()
	dst := make([]event.Record, 0, 4)
	out, err := other.Read(ctx, 0, dst)
	require.ErrorIs(t, err, event.ErrUnknownType)
	assert.Empty(t, out)
}

type unregistered struct{}

func (unregistered) EventType() string { return "pgstore_test.unregistered" }

func TestTooManyEvents(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	_, err := st.Update(context.Background(), func(tx store.Tx) error {
		for range pgstore.MaxEventsPerUpdate + 1 {
			tx.Record("s", Tick{})
		}
		return nil
	})
	require.ErrorIs(t, err, pgstore.ErrTooManyEvents)
}

func TestCheckpoints(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	cp, err := st.Load(ctx, "p")
	require.NoError(t, err)
	assert.Zero(t, cp)
	require.NoError(t, st.Save(ctx, "p", projection.Checkpoint{Position: 42, Version: 3}))
	require.NoError(t, st.Save(ctx, "p", projection.Checkpoint{Position: 43, Version: 3}))
	cp, err = st.Load(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, projection.Checkpoint{Position: 43, Version: 3}, cp)
	require.NoError(t, st.Close())
	_, err = st.Load(ctx, "p")
	assert.ErrorIs(t, err, store.ErrClosed)
	assert.ErrorIs(t, st.Save(ctx, "p", cp), store.ErrClosed)
	assert.ErrorIs(t, st.Park(ctx, "p", projection.DeadLetter{Record: event.Record{Position: 1}}), store.ErrClosed)
	assert.ErrorIs(t, st.Unpark(ctx, "p", 1), store.ErrClosed)
	assert.ErrorIs(t, st.ReplaceParked(ctx, "p", nil), store.ErrClosed)
	_, err = st.LoadParked(ctx, "p")
	assert.ErrorIs(t, err, store.ErrClosed)
}

func TestProjectorAppliesEachRecordOnce(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	view := pgx.Identifier{st.Schema(), "view"}.Sanitize()
	_, err := pool.Exec(ctx, "CREATE TABLE "+view+" (position bigint, n int)")
	require.NoError(t, err)
	errApply := errors.New("apply failed")
	fail := true
	p := pgstore.NewProjector(st, "view", func(ctx context.Context, tx pgx.Tx, rec event.Record) error {
		if _, err := tx.Exec(ctx, "INSERT INTO "+view+" VALUES ($1, $2)", int64(rec.Position), rec.Data.(Tick).Seq); err != nil {
			return err
		}
		if fail && rec.Data.(Tick).Seq == 2 {
			return errApply
		}
		return nil
	})
	assert.Equal(t, "view", p.Name())
	var _ projection.SelfCheckpointer = p

	for i := 1; i <= 3; i++ {
		_, err := st.Update(ctx, func(tx store.Tx) error {
			tx.Record("s", Tick{Seq: i})
			return nil
		})
		require.NoError(t, err)
	}
	recs := readUntil(t, st, 3)

	require.NoError(t, p.Handle(ctx, recs[0]))
	require.NoError(t, p.Handle(ctx, recs[0]), "a redelivery is skipped")
	require.ErrorIs(t, p.Handle(ctx, recs[1]), errApply)
	cp, err := p.LoadCheckpoint(ctx)
	require.NoError(t, err)
	assert.Equal(t, recs[0].Position, cp.Position, "a failed apply does not move the checkpoint")
	fail = false
	for _, r := range recs {
		require.NoError(t, p.Handle(ctx, r))
	}
	cp, err = st.Load(ctx, "view")
	require.NoError(t, err)
	assert.Equal(t, recs[2].Position, cp.Position)

	rows, _ := pool.Query(ctx, "SELECT n FROM "+view+" ORDER BY position")
	got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	assert.Equal(t, []int32{1, 2, 3}, got, "each record applied once, the failed attempt rolled back")
}

// TestHorizonHoldsBackLaterCommits is the deterministic form of the gap race:
// a unit of work has appended (so holds the lower position) but not yet
// committed while a later one commits. A naive reader returns the later event
// and never the earlier one; Read returns neither until both are final, then
// both in order.
func TestHorizonHoldsBackLaterCommits(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool, pgstore.WithPollInterval(20*time.Millisecond))
	ctx := context.Background()
	type hold struct{}
	appended, release, earlyDone := make(chan struct{}), make(chan struct{}), make(chan event.Position)
	pgstore.SetBeforeCommit(st, func(ctx context.Context) {
		if ctx.Value(hold{}) != nil {
			close(appended)
			<-release
		}
	})
	go func() {
		pos, err := st.Update(context.WithValue(ctx, hold{}, true), func(tx store.Tx) error {
			tx.Record("early", Tick{Seq: 1})
			return nil
		})
		assert.NoError(t, err)
		earlyDone <- pos
	}()
	<-appended
	late, err := st.Update(ctx, func(tx store.Tx) error {
		tx.Record("late", Tick{Seq: 2})
		return nil
	})
	require.NoError(t, err)

	naive := newNaiveReader(pool, st.Schema())
	got := naive.poll(t)
	require.Len(t, got, 1, "the naive reader sees the later commit")
	assert.Equal(t, late, got[0])

	out, err := st.Read(ctx, 0, nil)
	require.NoError(t, err)
	assert.Empty(t, out, "Read must not pass an open transaction")
	head, err := st.Head(ctx)
	require.NoError(t, err)
	assert.Zero(t, head)
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	assert.ErrorIs(t, st.Wait(wctx, 0), context.DeadlineExceeded)
	cancel()

	close(release)
	earlyPos := <-earlyDone
	require.Less(t, earlyPos, late, "the open transaction holds the lower position")
	recs := readUntil(t, st, 2)
	assert.Equal(t, []event.Position{earlyPos, late}, []event.Position{recs[0].Position, recs[1].Position})

	assert.Empty(t, naive.poll(t), "the naive reader has moved past the early event for good")
}

// TestPositionsFollowAppends: a unit of work that got its transaction id
// early (by writing a row) and appends to streams after another unit of work
// appended to them and committed must still sort after it, or readers would
// see version 2 of a stream before version 1. Positions come from the id of
// the subtransaction that appends, not from the transaction's own id.
func TestPositionsFollowAppends(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	rows := store.NewTable[string, int](st, "t")
	wrote, committed := make(chan struct{}), make(chan struct{})
	go func() {
		<-wrote
		_, err := st.Update(ctx, func(tx store.Tx) error {
			tx.Record("blind", Tick{Seq: 1})
			tx.Record("pinned", Tick{Seq: 1})
			return nil
		})
		assert.NoError(t, err)
		close(committed)
	}()
	_, err := st.Update(ctx, func(tx store.Tx) error {
		if _, err := rows.Put(tx, "k", 1); err != nil {
			return err
		}
		close(wrote)
		<-committed
		tx.Record("blind", Tick{Seq: 2})
		if err := tx.ExpectVersion("pinned", 1); err != nil {
			return err
		}
		tx.Record("pinned", Tick{Seq: 2})
		return nil
	})
	require.NoError(t, err)
	recs := readUntil(t, st, 4)
	for i, r := range recs {
		want := uint64(1 + i/2)
		assert.Equal(t, want, r.Version, "record %d (%s) out of stream order", i, r.Stream)
		assert.Equal(t, Tick{Seq: int(want)}, r.Data)
	}
}

// TestSequenceWithXminFilterStillSkips shows why positions are not taken from
// a sequence even with the transaction-id horizon: a transaction that got its
// id early can draw a later sequence value than a running transaction with a
// larger id, finish first, and be read past the running one's value.
func TestSequenceWithXminFilterStillSkips(t *testing.T) {
	pool := newPool(t, 8)
	schema := newSchema(t, pool)
	ctx := context.Background()
	log := pgx.Identifier{schema, "seqlog"}.Sanitize()
	_, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()+
		"; CREATE TABLE "+log+" (seq bigserial PRIMARY KEY, xid xid8 NOT NULL DEFAULT pg_current_xact_id())")
	require.NoError(t, err)

	c, err := pool.Begin(ctx) // gets its transaction id first...
	require.NoError(t, err)
	defer c.Rollback(ctx)
	_, err = c.Exec(ctx, "SELECT pg_current_xact_id()")
	require.NoError(t, err)
	a, err := pool.Begin(ctx) // ...a later id, but the lower sequence value
	require.NoError(t, err)
	defer a.Rollback(ctx)
	_, err = a.Exec(ctx, "INSERT INTO "+log+" DEFAULT VALUES")
	require.NoError(t, err)
	_, err = c.Exec(ctx, "INSERT INTO "+log+" DEFAULT VALUES")
	require.NoError(t, err)
	require.NoError(t, c.Commit(ctx))

	read := func(after int64) []int64 {
		rows, _ := pool.Query(ctx, "SELECT seq FROM "+log+
			" WHERE seq > $1 AND xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY seq", after)
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		return seqs
	}
	// A transaction of another test may be open in the cluster for a
	// moment and hold the horizon below c's id: wait until c's row shows.
	var first []int64
	require.Eventually(t, func() bool { first = read(0); return len(first) > 0 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, []int64{2}, first, "the finished transaction's value is read past the open one's")
	require.NoError(t, a.Commit(ctx))
	assert.Empty(t, read(first[0]), "sequence value 1 is skipped for good")
}

func TestWaitSurvivesLostListenConnection(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool, pgstore.WithPollInterval(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Start the watcher, then kill its LISTEN connection from the server.
	wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_ = st.Wait(wctx, 0)
	wcancel()
	var killed int
	require.Eventually(t, func() bool {
		err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE query LIKE 'LISTEN %' AND query LIKE '%'||$1||'%'`, st.Schema()).Scan(&killed)
		return err == nil && killed == 1
	}, 5*time.Second, 20*time.Millisecond)

	for i := 1; i <= 3; i++ {
		pos, err := st.Update(ctx, func(tx store.Tx) error {
			tx.Record("s", Tick{Seq: i})
			return nil
		})
		require.NoError(t, err)
		require.NoError(t, st.Wait(ctx, pos-1))
	}
	// And it came back.
	require.Eventually(t, func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE query LIKE 'LISTEN %' AND query LIKE '%'||$1||'%'`, st.Schema()).Scan(&n)
		return err == nil && n == 1
	}, 10*time.Second, 20*time.Millisecond)
}

func TestCloseStopsGoroutines(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	pos, err := st.Update(ctx, func(tx store.Tx) error {
		tx.Record("s", Tick{})
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, st.Wait(ctx, pos-1))
	require.Equal(t, 3, storeGoroutines(), "Update started the notifier, Wait the listener and the watcher")
	require.NoError(t, st.Close())
	assert.Zero(t, storeGoroutines(), "Close leaves no goroutine behind")
	_, err = st.Update(ctx, func(tx store.Tx) error { return nil })
	assert.ErrorIs(t, err, store.ErrClosed)
}

func storeGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "pgstore.(*Store).") || strings.Contains(g, "pgstore.(*watcher).") {
			n++
		}
	}
	return n
}

func TestTxUnusableAfterUpdate(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	var leaked store.Tx
	_, err := st.Update(context.Background(), func(tx store.Tx) error {
		leaked = tx
		return nil
	})
	require.NoError(t, err)
	_, err = leaked.StreamVersion("s")
	assert.ErrorContains(t, err, "after its Update returned")
	assert.Panics(t, func() { leaked.Record("s", Tick{}) })
	rt := leaked.(store.RowTx)
	_, _, err = rt.GetRow(context.Background(), "t", "k")
	assert.ErrorContains(t, err, "after its Update returned")
}

// streamVersion reads a stream's committed version in a unit of work.
func streamVersion(t testing.TB, st *pgstore.Store, stream string) uint64 {
	t.Helper()
	var v uint64
	_, err := st.Update(context.Background(), func(tx store.Tx) error {
		var err error
		v, err = tx.StreamVersion(stream)
		return err
	})
	require.NoError(t, err)
	return v
}

// readUntil waits until n records are readable and returns them.
func readUntil(t testing.TB, st *pgstore.Store, n int) []event.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []event.Record
	var after event.Position
	for len(recs) < n {
		out, err := st.Read(ctx, after, make([]event.Record, 0, 100))
		require.NoError(t, err)
		if len(out) == 0 {
			require.NoError(t, st.Wait(ctx, after))
			continue
		}
		recs = append(recs, out...)
		after = out[len(out)-1].Position
	}
	require.Len(t, recs, n)
	return recs
}

// naiveReader is the negative control: it trusts "position > last seen".
type naiveReader struct {
	pool  *pgxpool.Pool
	sql   string
	after int64
}

func newNaiveReader(pool *pgxpool.Pool, schema string) *naiveReader {
	return &naiveReader{pool: pool, sql: "SELECT position FROM " + pgx.Identifier{schema, "events"}.Sanitize() +
		" WHERE position > $1 ORDER BY position LIMIT 1000"}
}

func (n *naiveReader) poll(t testing.TB) []event.Position {
	t.Helper()
	rows, _ := n.pool.Query(context.Background(), n.sql, n.after)
	ps, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	out := make([]event.Position, len(ps))
	for i, p := range ps {
		out[i] = event.Position(p)
		n.after = p
	}
	return out
}

// TestWaitWokenByAnotherStore: a store in another process learns of commits
// through NOTIFY, long before its poll interval.
func TestWaitWokenByAnotherStore(t *testing.T) {
	pool := newPool(t, 8)
	writer := newStore(t, pool)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reader, err := pgstore.New(ctx, pool, testRegistry(t), pgstore.WithSchema(writer.Schema()),
		pgstore.WithPollInterval(time.Hour))
	require.NoError(t, err)
	defer reader.Close()
	for i := 1; i <= 5; i++ {
		head, err := reader.Head(ctx)
		require.NoError(t, err)
		woken := make(chan error, 1)
		go func() { woken <- reader.Wait(ctx, head) }()
		pos, err := writer.Update(ctx, func(tx store.Tx) error {
			tx.Record("s", Tick{Seq: i})
			return nil
		})
		require.NoError(t, err)
		select {
		case err := <-woken:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("the other store's Wait was not woken by the commit's notification")
		}
		got, err := reader.Head(ctx)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, got, pos)
	}
}

// TestCloseWaitsForUnitOfWork: Close waits for a unit of work in progress,
// which still commits, and a handler that calls the store while Close waits
// gets an error instead of a deadlock.
func TestCloseWaitsForUnitOfWork(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	ctx := context.Background()
	inside, closed := make(chan struct{}), make(chan struct{})
	var updated atomic.Bool
	go func() {
		<-inside
		assert.NoError(t, st.Close())
		assert.True(t, updated.Load(), "Close returned before the unit of work ended")
		close(closed)
	}()
	pos, err := st.Update(ctx, func(tx store.Tx) error {
		close(inside)
		time.Sleep(50 * time.Millisecond) // Close is waiting now
		_, err := st.Head(ctx)
		assert.ErrorIs(t, err, store.ErrClosed)
		tx.Record("s", Tick{})
		return nil
	})
	updated.Store(true)
	require.NoError(t, err)
	assert.NotZero(t, pos)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the unit of work ended")
	}
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{st.Schema(), "events"}.Sanitize()).Scan(&n))
	assert.Equal(t, 1, n, "the unit of work committed")
}

// TestWaitWokenAfterHorizonRises: a notification that arrives while another
// transaction holds the horizon back finds the head unchanged; the waiter
// must still wake soon after that transaction ends (which sends no
// notification), not at the next poll an hour later.
func TestWaitWokenAfterHorizonRises(t *testing.T) {
	pool := newPool(t, 8)
	writer := newStore(t, pool)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reader, err := pgstore.New(ctx, pool, testRegistry(t), pgstore.WithSchema(writer.Schema()),
		pgstore.WithPollInterval(time.Hour))
	require.NoError(t, err)
	defer reader.Close()
	head, err := reader.Head(ctx)
	require.NoError(t, err)

	// A transaction with an xid, open across the commit, holds the horizon.
	blocker, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = blocker.Exec(ctx, "SELECT pg_current_xact_id()")
	require.NoError(t, err)

	woken := make(chan error, 1)
	go func() { woken <- reader.Wait(ctx, head) }()
	_, err = writer.Update(ctx, func(tx store.Tx) error {
		tx.Record("s", Tick{Seq: 1})
		return nil
	})
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond) // the notification arrives and finds the head held back
	select {
	case err := <-woken:
		t.Fatalf("Wait returned while the horizon was held back: %v", err)
	default:
	}
	require.NoError(t, blocker.Rollback(ctx))
	select {
	case err := <-woken:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait was not woken after the blocking transaction ended")
	}
}
