package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Harness is one store under test, as returned by the constructor passed to
// Run.
type Harness struct {
	// Store runs units of work.
	Store store.Store
	// Log reads what Store commits; usually the same value as Store.
	Log store.Log
	// Close closes the store. The suite calls it at the end of every
	// subtest (and more than once in the subtest about closing), so it must
	// be safe to call again; after the first call, Update, Read, Head and
	// Wait must return errors matching store.ErrClosed.
	Close func() error
}

// Added is an event payload used by the suite. Durable stores must be able
// to encode it: register it with Register.
type Added struct {
	N int `json:"n"`
}

// EventType implements event.Event.
func (Added) EventType() string { return "storetest.added" }

// Renamed is an event payload used by the suite; see Added.
type Renamed struct {
	Name string `json:"name"`
}

// EventType implements event.Event.
func (Renamed) EventType() string { return "storetest.renamed" }

// Register adds the suite's event types to r, for stores that encode
// payloads through an event.Registry.
func Register(r *event.Registry) error {
	return errors.Join(event.Register[Added](r), event.Register[Renamed](r))
}

// account is the row type of the suite's tables.
type account struct {
	Owner   string `json:"owner"`
	Balance int    `json:"balance"`
}

// timeout bounds every wait in the suite, so that a broken Wait fails the
// test instead of hanging it.
const timeout = 10 * time.Second

// Run runs the conformance suite. newStore is called once per subtest and
// must return a new, empty store; it may register cleanups on the *testing.T
// it receives, which run after the suite has closed the store.
func Run(t *testing.T, newStore func(t *testing.T) Harness) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"AtomicCommit", testAtomicCommit},
		{"UpdateReturnsLastPosition", testLastPosition},
		{"PositionsAndVersions", testPositionsAndVersions},
		{"ExpectVersion", testExpectVersion},
		{"ConcurrentExpectVersion", testConcurrentExpectVersion},
		{"Table", testTable},
		{"ConcurrentPutIf", testConcurrentPutIf},
		{"ReadResumesAfterCheckpoint", testReadResume},
		{"Head", testHead},
		{"Wait", testWait},
		{"CancelledContext", testCancelled},
		{"Metadata", testMetadata},
		{"Close", testClose},
		{"NilEvent", testNilEvent},
		{"RollbackInPlace", testRollbackInPlace},
		{"CompositeKeys", testCompositeKeys},
		{"RowFidelity", testRowFidelity},
		{"BadText", testBadText},
		{"InsertExisting", testInsertExisting},
		{"ReadDefaultBatch", testReadDefaultBatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newStore(t)
			if h.Store == nil || h.Log == nil || h.Close == nil {
				t.Fatal("storetest: the Harness needs Store, Log and Close")
			}
			t.Cleanup(func() {
				if err := h.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, h)
		})
	}
}

func testAtomicCommit(t *testing.T, h Harness) {
	ctx := context.Background()
	accounts := store.NewTable[string, account](h.Store, "accounts")
	errBoom := errors.New("boom")

	_, err := h.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := accounts.Put(tx, "a1", account{Owner: "ann", Balance: 10}); err != nil {
			return err
		}
		tx.Record("account/a1", Added{N: 10})
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update with failing fn: got %v, want the fn's error", err)
	}
	assertNothing(t, h, accounts, "a1", "after fn returned an error")

	// The panic must reach the caller unchanged, after the rollback.
	type panicValue struct{ s string }
	func() {
		defer func() {
			if r := recover(); r != (panicValue{"boom"}) {
				t.Fatalf("recovered %v, want the handler's panic value", r)
			}
		}()
		_, _ = h.Store.Update(ctx, func(tx store.Tx) error {
			if _, err := accounts.Put(tx, "a1", account{Owner: "ann", Balance: 10}); err != nil {
				return err
			}
			tx.Record("account/a1", Added{N: 10})
			panic(panicValue{"boom"})
		})
		t.Fatal("Update returned instead of re-raising the panic")
	}()
	assertNothing(t, h, accounts, "a1", "after fn panicked")

	// And the store is still usable: a good unit of work commits both.
	pos, err := h.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := accounts.Put(tx, "a1", account{Owner: "ann", Balance: 10}); err != nil {
			return err
		}
		tx.Record("account/a1", Added{N: 10})
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	waitFor(t, h, pos)
	recs := readAll(t, h.Log, 0)
	if len(recs) != 1 || recs[0].Stream != "account/a1" || recs[0].Data != (Added{N: 10}) {
		t.Fatalf("log after one commit: %v", summary(recs))
	}
	got := getRow(t, h, accounts, "a1")
	if got.val != (account{Owner: "ann", Balance: 10}) || got.ver != 1 {
		t.Fatalf("row after commit: %+v", got)
	}
}

// assertNothing checks that a rolled-back unit of work left no event and no
// row behind.
func assertNothing(t *testing.T, h Harness, tbl *store.Table[string, account], key, when string) {
	t.Helper()
	ctx := context.Background()
	head, err := h.Log.Head(ctx)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if head != 0 {
		t.Fatalf("%s: Head = %v, want 0", when, head)
	}
	if recs := readAll(t, h.Log, 0); len(recs) != 0 {
		t.Fatalf("%s: log holds %v", when, summary(recs))
	}
	var exists bool
	if _, err := h.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		exists, err = tbl.Exists(tx, key)
		return err
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if exists {
		t.Fatalf("%s: row %q exists", when, key)
	}
}

func testLastPosition(t *testing.T, h Harness) {
	ctx := context.Background()
	pos := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s/a", Added{N: 1})
		tx.Record("s/b", Added{N: 2})
		tx.Record("s/a", Added{N: 3})
		return nil
	})
	waitFor(t, h, pos)
	recs := readAll(t, h.Log, 0)
	if len(recs) != 3 {
		t.Fatalf("log holds %v, want 3 records", summary(recs))
	}
	if recs[2].Position != pos || recs[2].Data != (Added{N: 3}) {
		t.Fatalf("Update returned %v, but the last record is %v", pos, summary(recs[2:]))
	}

	// A unit of work without events returns the head: at or after the
	// caller's last write, and no later than what the log says is readable.
	empty := mustUpdate(t, h, func(tx store.Tx) error { return nil })
	head, err := h.Log.Head(ctx)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if empty < pos || empty > head {
		t.Fatalf("Update without events returned %v, want the head (>= %v, <= %v)", empty, pos, head)
	}
}

func testPositionsAndVersions(t *testing.T, h Harness) {
	var last event.Position
	for i := 1; i <= 3; i++ {
		last = mustUpdate(t, h, func(tx store.Tx) error {
			if v, err := tx.StreamVersion("s/a"); err != nil || v != uint64(i-1) {
				return fmt.Errorf("StreamVersion(s/a) before Record = %d, %v; want %d", v, err, i-1)
			}
			tx.Record("s/a", Added{N: i})
			if v, err := tx.StreamVersion("s/a"); err != nil || v != uint64(i) {
				return fmt.Errorf("StreamVersion(s/a) after Record = %d, %v; want %d (pending events count)", v, err, i)
			}
			if i < 3 {
				tx.Record("s/b", Renamed{Name: fmt.Sprint("name-", i)})
			}
			if v, err := tx.StreamVersion("s/none"); err != nil || v != 0 {
				return fmt.Errorf("StreamVersion of a new stream = %d, %v; want 0", v, err)
			}
			return nil
		})
	}
	waitFor(t, h, last)
	recs := readAll(t, h.Log, 0)
	want := []struct {
		stream  string
		version uint64
		data    event.Event
	}{
		{"s/a", 1, Added{N: 1}}, {"s/b", 1, Renamed{Name: "name-1"}},
		{"s/a", 2, Added{N: 2}}, {"s/b", 2, Renamed{Name: "name-2"}},
		{"s/a", 3, Added{N: 3}},
	}
	if len(recs) != len(want) {
		t.Fatalf("log holds %v, want %d records", summary(recs), len(want))
	}
	ids := make(map[string]bool)
	for i, r := range recs {
		w := want[i]
		if r.Stream != w.stream || r.Version != w.version || !reflect.DeepEqual(r.Data, w.data) {
			t.Errorf("record %d = %s, want %s v%d %v", i, summary(recs[i:i+1]), w.stream, w.version, w.data)
		}
		if r.Type != w.data.EventType() {
			t.Errorf("record %d: Type = %q, want %q", i, r.Type, w.data.EventType())
		}
		if i > 0 && r.Position <= recs[i-1].Position {
			t.Errorf("record %d: position %v does not follow %v", i, r.Position, recs[i-1].Position)
		}
		if r.Position == 0 {
			t.Errorf("record %d: position 0", i)
		}
		if r.Time.IsZero() {
			t.Errorf("record %d: zero Time", i)
		}
		var zero [16]byte
		if r.ID == zero || ids[r.ID.String()] {
			t.Errorf("record %d: ID %v is zero or repeated", i, r.ID)
		}
		ids[r.ID.String()] = true
	}
	if recs[len(recs)-1].Position != last {
		t.Errorf("last Update returned %v, last record is at %v", last, recs[len(recs)-1].Position)
	}
	if c, ok := h.Log.(store.Contiguous); ok && c.Contiguous() {
		for i, r := range recs {
			if r.Position != event.Position(i+1) {
				t.Errorf("contiguous log: record %d at position %v, want %d", i, r.Position, i+1)
			}
		}
	}
}

func testExpectVersion(t *testing.T, h Harness) {
	ctx := context.Background()
	waitFor(t, h, mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 1})
		tx.Record("s", Added{N: 2})
		return nil
	}))
	head := mustHead(t, h)

	var called bool
	_, err := h.Store.Update(ctx, func(tx store.Tx) error {
		called = true
		if err := tx.ExpectVersion("s", 1); err != nil {
			return err
		}
		tx.Record("s", Added{N: 99})
		return nil
	})
	assertConflict(t, err, "", "s", 1)
	if !called {
		t.Fatal("fn was not called")
	}
	if got := mustHead(t, h); got != head {
		t.Fatalf("a failed ExpectVersion wrote: head %v -> %v", head, got)
	}

	last := mustUpdate(t, h, func(tx store.Tx) error {
		if err := tx.ExpectVersion("s", 2); err != nil {
			return err
		}
		tx.Record("s", Added{N: 3})
		// Events recorded earlier in the unit of work count.
		if err := tx.ExpectVersion("s", 3); err != nil {
			return fmt.Errorf("ExpectVersion after Record: %w", err)
		}
		return tx.ExpectVersion("new-stream", 0)
	})
	waitFor(t, h, last)
	recs := readAll(t, h.Log, 0)
	if len(recs) != 3 || recs[2].Version != 3 || recs[2].Data != (Added{N: 3}) {
		t.Fatalf("log holds %v", summary(recs))
	}
}

func testConcurrentExpectVersion(t *testing.T, h Harness) {
	const writers, rounds = 8, 4
	ctx := context.Background()
	var last event.Position
	for round := range rounds {
		start := make(chan struct{})
		errs := make([]error, writers)
		poss := make([]event.Position, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				poss[i], errs[i] = h.Store.Update(ctx, func(tx store.Tx) error {
					if err := tx.ExpectVersion("contended", uint64(round)); err != nil {
						return err
					}
					tx.Record("contended", Added{N: round*100 + i})
					return nil
				})
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			if err == nil {
				wins++
				last = poss[i]
				continue
			}
			var ce *store.ConflictError
			if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) {
				t.Fatalf("round %d writer %d: got %v, want a *store.ConflictError", round, i, err)
			}
			if ce.Key != "contended" || ce.Table != "" || ce.Expected != uint64(round) || ce.Actual <= ce.Expected {
				t.Fatalf("round %d writer %d: conflict %+v, want stream \"contended\", expected %d, a later actual", round, i, ce, round)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d of %d writers at the same expected version won, want exactly 1", round, wins, writers)
		}
	}
	waitFor(t, h, last)
	recs := readAll(t, h.Log, 0)
	if len(recs) != rounds {
		t.Fatalf("log holds %d records, want %d: %v", len(recs), rounds, summary(recs))
	}
	for i, r := range recs {
		if r.Version != uint64(i+1) {
			t.Fatalf("record %d has version %d", i, r.Version)
		}
	}
}

func testTable(t *testing.T, h Harness) {
	ctx := context.Background()
	accounts := store.NewTable[string, account](h.Store, "accounts")
	byID := store.NewTable[int, account](h.Store, "accounts-by-id")
	if accounts.Name() != "accounts" {
		t.Fatalf("Name = %q", accounts.Name())
	}
	ann := account{Owner: "ann", Balance: 1}

	mustUpdate(t, h, func(tx store.Tx) error {
		if err := accounts.Insert(tx, "a", ann); err != nil {
			return err
		}
		// Writes are visible later in the same unit of work.
		v, ver, err := accounts.Get(tx, "a")
		if err != nil || v != ann || ver != 1 {
			return fmt.Errorf("after Insert, Get = %+v, %d, %v", v, ver, err)
		}
		_, err = byID.Put(tx, 7, ann)
		return err
	})
	if r := getRow(t, h, accounts, "a"); r.val != ann || r.ver != 1 {
		t.Fatalf("Get = %+v, want version 1", r)
	}
	if r := getRow(t, h, byID, 7); r.val != ann || r.ver != 1 {
		t.Fatalf("Get(7) = %+v", r)
	}

	_, err := h.Store.Update(ctx, func(tx store.Tx) error { return accounts.Insert(tx, "a", ann) })
	if !errors.Is(err, store.ErrAlreadyExists) || errors.Is(err, store.ErrConflict) {
		t.Fatalf("Insert of an existing row: got %v, want ErrAlreadyExists", err)
	}

	ann.Balance = 2
	mustUpdate(t, h, func(tx store.Tx) error {
		v, err := accounts.PutIf(tx, "a", ann, 1)
		if err == nil && v != 2 {
			err = fmt.Errorf("PutIf returned version %d, want 2", v)
		}
		return err
	})
	_, err = h.Store.Update(ctx, func(tx store.Tx) error {
		_, err := accounts.PutIf(tx, "a", account{Owner: "stale"}, 1)
		return err
	})
	assertConflict(t, err, "accounts", "a", 1)
	_, err = h.Store.Update(ctx, func(tx store.Tx) error {
		_, err := accounts.PutIf(tx, "missing", ann, 5)
		return err
	})
	assertConflict(t, err, "accounts", "missing", 5)

	// A conflict is an ordinary error: the unit of work can go on.
	ann.Balance = 3
	mustUpdate(t, h, func(tx store.Tx) error {
		if _, err := accounts.PutIf(tx, "a", ann, 7); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("PutIf at a wrong version: %v", err)
		}
		v, err := accounts.Put(tx, "a", ann)
		if err == nil && v != 3 {
			err = fmt.Errorf("after PutIf, Put returned version %d, want 3", v)
		}
		return err
	})
	if r := getRow(t, h, accounts, "a"); r.val != ann || r.ver != 3 {
		t.Fatalf("Get = %+v, want balance 3 at version 3", r)
	}

	// A rolled-back write leaves the row as it was.
	errUndo := errors.New("undo")
	_, err = h.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := accounts.Put(tx, "a", account{Owner: "rolled back"}); err != nil {
			return err
		}
		if err := accounts.Delete(tx, "a"); err != nil {
			return err
		}
		return errUndo
	})
	if !errors.Is(err, errUndo) {
		t.Fatalf("Update: %v", err)
	}
	if r := getRow(t, h, accounts, "a"); r.val != ann || r.ver != 3 {
		t.Fatalf("after rollback Get = %+v, want balance 3 at version 3", r)
	}

	mustUpdate(t, h, func(tx store.Tx) error { return accounts.Delete(tx, "a") })
	_, err = h.Store.Update(ctx, func(tx store.Tx) error {
		if ok, err := accounts.Exists(tx, "a"); err != nil || ok {
			return fmt.Errorf("after Delete, Exists = %v, %v", ok, err)
		}
		_, _, err := accounts.Get(tx, "a")
		return err
	})
	assertNotFound(t, err, "accounts", "a")
	_, err = h.Store.Update(ctx, func(tx store.Tx) error { return accounts.Delete(tx, "a") })
	assertNotFound(t, err, "accounts", "a")

	// A deleted row can be inserted again.
	mustUpdate(t, h, func(tx store.Tx) error {
		_, err := accounts.PutIf(tx, "a", ann, 0)
		return err
	})
	if r := getRow(t, h, accounts, "a"); r.val != ann || r.ver != 1 {
		t.Fatalf("Get after re-insert = %+v, want version 1", r)
	}
}

func testConcurrentPutIf(t *testing.T, h Harness) {
	const writers, rounds = 8, 4
	ctx := context.Background()
	accounts := store.NewTable[string, account](h.Store, "accounts")
	mustUpdate(t, h, func(tx store.Tx) error { return accounts.Insert(tx, "hot", account{Owner: "v1"}) })
	for round := range rounds {
		// Every writer read version round+1 earlier and now writes back.
		expected := uint64(round + 1)
		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				_, errs[i] = h.Store.Update(ctx, func(tx store.Tx) error {
					_, err := accounts.PutIf(tx, "hot", account{Owner: fmt.Sprint("writer-", i), Balance: round}, expected)
					return err
				})
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			if err == nil {
				wins++
				continue
			}
			var ce *store.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) || ce.Table != "accounts" || ce.Key != "hot" || ce.Expected != expected {
				t.Fatalf("round %d writer %d: got %v, want a conflict on accounts/hot at version %d", round, i, err, expected)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d of %d PutIf at the same version won, want exactly 1", round, wins, writers)
		}
	}
	if r := getRow(t, h, accounts, "hot"); r.ver != rounds+1 || r.val.Balance != rounds-1 {
		t.Fatalf("row after %d rounds: %+v", rounds, r)
	}
}

func testReadResume(t *testing.T, h Harness) {
	ctx := context.Background()
	var last event.Position
	n := 0
	for size := range 8 {
		last = mustUpdate(t, h, func(tx store.Tx) error {
			for range size%4 + 1 {
				n++
				tx.Record(fmt.Sprint("s/", n%3), Added{N: n})
			}
			return nil
		})
	}
	waitFor(t, h, last)
	all := readAll(t, h.Log, 0)
	if len(all) != n {
		t.Fatalf("log holds %d records, want %d", len(all), n)
	}
	for i, r := range all {
		if r.Data != (Added{N: i + 1}) {
			t.Fatalf("record %d = %v, want commit order", i, summary(all[i:i+1]))
		}
	}

	for _, capacity := range []int{0, 1, 3, 7, 64} {
		var got []event.Record
		after := event.Position(0)
		for {
			buf, err := h.Log.Read(ctx, after, make([]event.Record, 0, capacity))
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(buf) == 0 {
				break
			}
			if capacity > 0 && len(buf) > capacity {
				t.Fatalf("Read with cap %d returned %d records", capacity, len(buf))
			}
			got = append(got, buf...)
			after = buf[len(buf)-1].Position
		}
		assertSame(t, fmt.Sprint("paging with cap ", capacity), got, all)
	}

	for i := range all {
		assertSame(t, fmt.Sprint("resuming after record ", i), readAll(t, h.Log, all[i].Position), all[i+1:])
	}

	// Read appends to dst and keeps what was there.
	dst := make([]event.Record, 1, 4)
	dst[0].Stream = "kept"
	out, err := h.Log.Read(ctx, 0, dst)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(out) != 4 || out[0].Stream != "kept" {
		t.Fatalf("Read into a slice of len 1, cap 4 gave %d records, first %q", len(out), out[0].Stream)
	}
	assertSame(t, "Read into a non-empty slice", out[1:], all[:3])
	// A full dst receives a default batch (here: all the rest).
	out, err = h.Log.Read(ctx, all[0].Position, dst[:1:1])
	if err != nil || len(out) != len(all) {
		t.Fatalf("Read into a full slice: %d records, %v; want %d appended", len(out)-1, err, len(all)-1)
	}
	assertSame(t, "Read into a full slice", out[1:], all[1:])
}

func testHead(t *testing.T, h Harness) {
	if head := mustHead(t, h); head != 0 {
		t.Fatalf("Head of an empty log = %v", head)
	}
	p1 := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 1})
		return nil
	})
	waitFor(t, h, p1)
	if head := mustHead(t, h); head != p1 {
		t.Fatalf("Head = %v, want %v", head, p1)
	}
	p2 := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 2})
		tx.Record("t", Added{N: 3})
		return nil
	})
	waitFor(t, h, p2)
	if head := mustHead(t, h); head != p2 {
		t.Fatalf("Head = %v, want %v", head, p2)
	}
}

func testWait(t *testing.T, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p1 := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 1})
		return nil
	})
	if err := h.Log.Wait(ctx, p1-1); err != nil {
		t.Fatalf("Wait for a committed position: %v", err)
	}
	if err := h.Log.Wait(ctx, 0); err != nil {
		t.Fatalf("Wait(0) on a non-empty log: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- h.Log.Wait(ctx, p1) }()
	select {
	case err := <-done:
		t.Fatalf("Wait past the head returned before any commit: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	p2 := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 2})
		return nil
	})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait woken by a commit: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("Wait was not woken by a commit")
	}
	if head := mustHead(t, h); head < p2 {
		t.Fatalf("Wait returned but Head = %v < %v", head, p2)
	}

	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, ccancel)
	if err := h.Log.Wait(cctx, p2); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v, want context.Canceled", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if err := h.Log.Wait(dctx, p2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past its deadline: %v, want context.DeadlineExceeded", err)
	}
}

func testCancelled(t *testing.T, h Harness) {
	accounts := store.NewTable[string, account](h.Store, "accounts")
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	_, err := h.Store.Update(cctx, func(tx store.Tx) error {
		called = true
		tx.Record("s", Added{N: 1})
		_, err := accounts.Put(tx, "a", account{Owner: "ann"})
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with a cancelled context: %v, want context.Canceled", err)
	}
	if called {
		t.Fatal("Update ran fn although its context was already cancelled")
	}
	assertNothing(t, h, accounts, "a", "after Update with a cancelled context")

	// Cancelled while the unit of work runs: all or nothing.
	cctx, cancel = context.WithCancel(context.Background())
	pos, err := h.Store.Update(cctx, func(tx store.Tx) error {
		if _, err := accounts.Put(tx, "a", account{Owner: "ann"}); err != nil {
			return err
		}
		tx.Record("s", Added{N: 2})
		cancel()
		return nil
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Update cancelled during fn: %v, want nil or context.Canceled", err)
		}
		assertNothing(t, h, accounts, "a", "after Update cancelled during fn failed")
		return
	}
	waitFor(t, h, pos)
	if recs := readAll(t, h.Log, 0); len(recs) != 1 {
		t.Fatalf("Update cancelled during fn succeeded, but the log holds %v", summary(recs))
	}
	if r := getRow(t, h, accounts, "a"); r.ver != 1 {
		t.Fatalf("Update cancelled during fn succeeded, but the row is %+v", r)
	}
}

func testMetadata(t *testing.T, h Harness) {
	md := event.Metadata{CorrelationID: "corr-1", CausationID: "cmd-1", UserID: "user-1"}
	ctx := event.WithMetadata(context.Background(), md)
	if _, err := h.Store.Update(ctx, func(tx store.Tx) error {
		tx.Record("s", Added{N: 1})
		tx.Record("t", Renamed{Name: "x"})
		return nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	last := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 2})
		return nil
	})
	waitFor(t, h, last)
	recs := readAll(t, h.Log, 0)
	if len(recs) != 3 {
		t.Fatalf("log holds %v", summary(recs))
	}
	for i, want := range []event.Metadata{md, md, {}} {
		if recs[i].Metadata != want {
			t.Errorf("record %d: Metadata = %+v, want %+v", i, recs[i].Metadata, want)
		}
	}
}

func testClose(t *testing.T, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pos := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 1})
		return nil
	})
	waitFor(t, h, pos)
	waiting := make(chan error, 1)
	go func() { waiting <- h.Log.Wait(ctx, pos) }()
	time.Sleep(20 * time.Millisecond)

	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-waiting:
		if !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Wait in progress at Close returned %v, want store.ErrClosed", err)
		}
	case <-time.After(timeout):
		t.Fatal("Close did not release a Wait in progress")
	}

	called := false
	if _, err := h.Store.Update(ctx, func(tx store.Tx) error {
		called = true
		return nil
	}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Update after Close: %v, want store.ErrClosed", err)
	}
	if called {
		t.Fatal("Update after Close ran fn")
	}
	if _, err := h.Log.Read(ctx, 0, nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Read after Close: %v, want store.ErrClosed", err)
	}
	if _, err := h.Log.Head(ctx); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Head after Close: %v, want store.ErrClosed", err)
	}
	if err := h.Log.Wait(ctx, 0); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Wait after Close: %v, want store.ErrClosed", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// helpers

func mustUpdate(t *testing.T, h Harness, fn func(tx store.Tx) error) event.Position {
	t.Helper()
	pos, err := h.Store.Update(context.Background(), fn)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	return pos
}

func mustHead(t *testing.T, h Harness) event.Position {
	t.Helper()
	head, err := h.Log.Head(context.Background())
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return head
}

// waitFor waits until pos is readable. A durable log may lag behind the
// commit (see package doc), so the suite never reads without it.
func waitFor(t *testing.T, h Harness, pos event.Position) {
	t.Helper()
	if pos == 0 {
		t.Fatal("waitFor(0): the unit of work returned no position")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := h.Log.Wait(ctx, pos-1); err != nil {
		t.Fatalf("Wait for position %v: %v", pos, err)
	}
}

func readAll(t *testing.T, log store.Log, after event.Position) []event.Record {
	t.Helper()
	var out []event.Record
	for {
		buf, err := log.Read(context.Background(), after, make([]event.Record, 0, 100))
		if err != nil {
			t.Fatalf("Read after %v: %v", after, err)
		}
		if len(buf) == 0 {
			return out
		}
		out = append(out, buf...)
		after = buf[len(buf)-1].Position
	}
}

type rowVal[V any] struct {
	val V
	ver uint64
}

func getRow[K comparable, V any](t *testing.T, h Harness, tbl *store.Table[K, V], key K) rowVal[V] {
	t.Helper()
	var r rowVal[V]
	if _, err := h.Store.Update(context.Background(), func(tx store.Tx) error {
		var err error
		r.val, r.ver, err = tbl.Get(tx, key)
		return err
	}); err != nil {
		t.Fatalf("Get %v: %v", key, err)
	}
	return r
}

func assertConflict(t *testing.T, err error, table, key string, expected uint64) {
	t.Helper()
	var ce *store.ConflictError
	if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *store.ConflictError", err)
	}
	if ce.Table != table || ce.Key != key || ce.Expected != expected || ce.Actual == expected {
		t.Fatalf("conflict %+v, want table %q key %q expected %d and a different actual", ce, table, key, expected)
	}
}

func assertNotFound(t *testing.T, err error, table, key string) {
	t.Helper()
	var nf *store.NotFoundError
	if !errors.Is(err, store.ErrNotFound) || !errors.As(err, &nf) {
		t.Fatalf("got %v, want a *store.NotFoundError", err)
	}
	if nf.Table != table || nf.Key != key {
		t.Fatalf("not found %+v, want table %q key %q", nf, table, key)
	}
}

func assertSame(t *testing.T, what string, got, want []event.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d:\ngot  %v\nwant %v", what, len(got), len(want), summary(got), summary(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Position != w.Position || g.Stream != w.Stream || g.Version != w.Version ||
			g.Type != w.Type || g.Metadata != w.Metadata || !g.Time.Equal(w.Time) || !reflect.DeepEqual(g.Data, w.Data) {
			t.Fatalf("%s: record %d = %v, want %v", what, i, summary(got[i:i+1]), summary(want[i:i+1]))
		}
	}
}

func summary(recs []event.Record) string {
	s := "["
	for i, r := range recs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%v:%s/v%d:%v", r.Position, r.Stream, r.Version, r.Data)
	}
	return s + "]"
}
