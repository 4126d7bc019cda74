package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

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

// testNilEvent: recording a nil event fails the unit of work with nothing
// applied, whatever else it wrote.
func testNilEvent(t *testing.T, h Harness) {
	ctx := context.Background()
	accounts := store.NewTable[string, account](h.Store, "accounts")
	_, err := h.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := accounts.Put(tx, "a1", account{Owner: "ann"}); err != nil {
			return err
		}
		tx.Record("account/a1", Added{N: 1})
		tx.Record("account/a1", nil)
		return nil
	})
	assertInvalid(t, err, "Update recording a nil event")
	var ie *store.InvalidError
	if errors.As(err, &ie); ie.What != "event" {
		t.Fatalf("InvalidError.What = %q, want %q", ie.What, "event")
	}
	assertNothing(t, h, accounts, "a1", "after a nil event")
	var v uint64
	mustUpdate(t, h, func(tx store.Tx) error {
		var err error
		v, err = tx.StreamVersion("account/a1")
		return err
	})
	if v != 0 {
		t.Fatalf("stream version after a nil event = %d, want 0", v)
	}
}

// testRollbackInPlace: a handler that edits, in place, the slice or map it
// read and then fails leaves the stored row as it was; so does one that
// edits a value after writing it.
func testRollbackInPlace(t *testing.T, h Harness) {
	ctx := context.Background()
	lists := store.NewTable[string, []int](h.Store, "lists")
	maps := store.NewTable[string, map[string]int](h.Store, "maps")
	type nested struct {
		Tags  []string
		Inner *struct{ N []int }
	}
	nests := store.NewTable[string, nested](h.Store, "nested")
	type withRaw struct{ Attrs json.RawMessage } // encodes itself, yet is a slice
	raws := store.NewTable[string, withRaw](h.Store, "raws")
	mustUpdate(t, h, func(tx store.Tx) error {
		if _, err := raws.Put(tx, "k", withRaw{Attrs: json.RawMessage(`12`)}); err != nil {
			return err
		}
		if _, err := lists.Put(tx, "k", []int{1, 2}); err != nil {
			return err
		}
		if _, err := maps.Put(tx, "k", map[string]int{"a": 1}); err != nil {
			return err
		}
		_, err := nests.Put(tx, "k", nested{Tags: []string{"x"}, Inner: &struct{ N []int }{N: []int{1}}})
		return err
	})
	errBoom := errors.New("boom")
	_, err := h.Store.Update(ctx, func(tx store.Tx) error {
		l, _, err := lists.Get(tx, "k")
		if err != nil {
			return err
		}
		l[0] = 99
		m, _, err := maps.Get(tx, "k")
		if err != nil {
			return err
		}
		m["a"] = 99
		m["b"] = 2
		n, _, err := nests.Get(tx, "k")
		if err != nil {
			return err
		}
		n.Tags[0] = "changed"
		n.Inner.N[0] = 99
		r, _, err := raws.Get(tx, "k")
		if err != nil {
			return err
		}
		r.Attrs[1] = '9'
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update: got %v, want the handler's error", err)
	}
	// A committed handler that edits what it read without writing it back,
	// and edits what it wrote after Put, does not change the row either.
	mustUpdate(t, h, func(tx store.Tx) error {
		l, _, err := lists.Get(tx, "k")
		if err != nil {
			return err
		}
		l[1] = 98
		m := map[string]int{"a": 1}
		if _, err := maps.Put(tx, "k", m); err != nil {
			return err
		}
		m["a"] = 97
		return nil
	})
	if r := getRow(t, h, lists, "k"); !reflect.DeepEqual(r.val, []int{1, 2}) || r.ver != 1 {
		t.Fatalf("slice row = %v (version %d), want [1 2] at version 1", r.val, r.ver)
	}
	if r := getRow(t, h, maps, "k"); !reflect.DeepEqual(r.val, map[string]int{"a": 1}) || r.ver != 2 {
		t.Fatalf("map row = %v (version %d), want map[a:1] at version 2", r.val, r.ver)
	}
	if r := getRow(t, h, nests, "k"); r.val.Tags[0] != "x" || r.val.Inner.N[0] != 1 {
		t.Fatalf("nested row = %+v, want the committed one", r.val)
	}
	if r := getRow(t, h, raws, "k"); string(r.val.Attrs) != "12" {
		t.Fatalf("json.RawMessage row = %s, want the committed 12", r.val.Attrs)
	}
}
