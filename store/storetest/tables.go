package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cqrskit/cqrs/store"
)

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

// testInsertExisting: Insert of an existing key is an already-exists error,
// which is permanent (not ErrConflict, so a retry loop stops at once);
// PutIf with expected version 0 on an existing row stays a conflict.
func testInsertExisting(t *testing.T, h Harness) {
	ctx := context.Background()
	accounts := store.NewTable[string, account](h.Store, "accounts")
	pairs := store.NewTable[pairKey, account](h.Store, "pairs")
	mustUpdate(t, h, func(tx store.Tx) error {
		if err := pairs.Insert(tx, pairKey{"a", "b"}, account{}); err != nil {
			return err
		}
		return accounts.Insert(tx, "a", account{Owner: "ann"})
	})
	// A retry loop in the style of command.Retry: re-run on ErrConflict.
	attempts := 0
	var err error
	for range 5 {
		attempts++
		_, err = h.Store.Update(ctx, func(tx store.Tx) error {
			tx.Record("account/a", Added{N: 1})
			return accounts.Insert(tx, "a", account{Owner: "bob"})
		})
		if !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	var ae *store.AlreadyExistsError
	if !errors.Is(err, store.ErrAlreadyExists) || !errors.As(err, &ae) {
		t.Fatalf("Insert of an existing key: got %v, want a *store.AlreadyExistsError", err)
	}
	if ae.Table != "accounts" || ae.Key != "a" {
		t.Fatalf("AlreadyExistsError = %+v, want table accounts, key a", ae)
	}
	if attempts != 1 {
		t.Fatalf("a retry-on-conflict loop ran %d attempts, want 1", attempts)
	}
	_, err = h.Store.Update(ctx, func(tx store.Tx) error { return pairs.Insert(tx, pairKey{"a", "b"}, account{}) })
	if !errors.As(err, &ae) || ae.Key != `{"A":"a","B":"b"}` {
		t.Fatalf("Insert of an existing composite key: got %v", err)
	}
	_, err = h.Store.Update(ctx, func(tx store.Tx) error {
		_, err := accounts.PutIf(tx, "a", account{Owner: "bob"}, 0)
		return err
	})
	assertConflict(t, err, "accounts", "a", 0)
	if errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("PutIf(expected 0) on an existing row matches ErrAlreadyExists: %v", err)
	}
	if r := getRow(t, h, accounts, "a"); r.val.Owner != "ann" || r.ver != 1 {
		t.Fatalf("row after refused writes = %+v", r)
	}
	if head := mustHead(t, h); head != 0 {
		t.Fatalf("Head = %v after refused writes, want 0", head)
	}
}

// pairKey is a composite key whose fields, printed with fmt.Sprint, collide
// for different keys: {"a b" "c"} and {"a" "b c"} both print as {a b c}.
type pairKey struct {
	A string
	B string
}

// testCompositeKeys: different keys are different rows on every store, and
// errors name keys in one encoding: strings as they are, other keys as JSON.
func testCompositeKeys(t *testing.T, h Harness) {
	pairs := store.NewTable[pairKey, account](h.Store, "pairs")
	k1, k2 := pairKey{"a b", "c"}, pairKey{"a", "b c"}
	mustUpdate(t, h, func(tx store.Tx) error {
		if err := pairs.Insert(tx, k1, account{Owner: "one"}); err != nil {
			return err
		}
		return pairs.Insert(tx, k2, account{Owner: "two"})
	})
	if r := getRow(t, h, pairs, k1); r.val.Owner != "one" || r.ver != 1 {
		t.Fatalf("row %v = %+v", k1, r)
	}
	if r := getRow(t, h, pairs, k2); r.val.Owner != "two" || r.ver != 1 {
		t.Fatalf("row %v = %+v", k2, r)
	}
	_, err := h.Store.Update(context.Background(), func(tx store.Tx) error {
		_, _, err := pairs.Get(tx, pairKey{"x", "y"})
		return err
	})
	assertNotFound(t, err, "pairs", `{"A":"x","B":"y"}`)
	ints := store.NewTable[int, account](h.Store, "ints")
	_, err = h.Store.Update(context.Background(), func(tx store.Tx) error {
		_, _, err := ints.Get(tx, -7)
		return err
	})
	assertNotFound(t, err, "ints", "-7")
	// 0 and -0 are one Go map key but two JSON keys: float keys are refused.
	floats := store.NewTable[float64, account](h.Store, "floats")
	_, err = h.Store.Update(context.Background(), func(tx store.Tx) error {
		_, err := floats.Put(tx, 0, account{Owner: "zero"})
		return err
	})
	assertInvalid(t, err, "float key")
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
	if nf.What != table || nf.Key != key {
		t.Fatalf("not found %+v, want table %q key %q", nf, table, key)
	}
}
