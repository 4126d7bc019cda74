package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/store"
)

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
