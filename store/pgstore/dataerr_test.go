package pgstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/storetest"
)

// TestDataExceptionsAreInvalid sends text PostgreSQL refuses straight to the
// database, past the checks of store.Table: in a row key, in a row value and
// in a stream name. Each must come back as a *store.InvalidError that wraps
// the driver's error, is not retryable and leaves nothing behind.
func TestDataExceptionsAreInvalid(t *testing.T) {
	st := newStore(t, newPool(t, 0))
	ctx := context.Background()
	bad := map[string]string{"NUL": "a\x00b", "invalid UTF-8": "a\xffb"}
	for name, s := range bad {
		for _, place := range []struct {
			name string
			fn   func(tx store.Tx) error
		}{
			{"row key", func(tx store.Tx) error {
				_, err := tx.(store.RowTx).PutRow(tx.Context(), "t", "k"+s, []byte(`{}`))
				return err
			}},
			{"row key read", func(tx store.Tx) error {
				_, _, err := tx.(store.RowTx).GetRow(tx.Context(), "t", "k"+s)
				return err
			}},
			{"row value", func(tx store.Tx) error {
				_, err := tx.(store.RowTx).PutRow(tx.Context(), "t", "k", []byte(`{"s":"`+s+`"}`))
				return err
			}},
			{"row value escaped NUL", func(tx store.Tx) error {
				_, err := tx.(store.RowTx).PutRow(tx.Context(), "t", "k", []byte(`{"s":"\u0000"}`))
				return err
			}},
			{"stream", func(tx store.Tx) error {
				tx.Record("s/"+s, storetest.Added{N: 1})
				return nil
			}},
			{"event payload", func(tx store.Tx) error {
				tx.Record("s", storetest.Renamed{Name: "\x00"})
				return nil
			}},
		} {
			_, err := st.Update(ctx, func(tx store.Tx) error {
				if err := place.fn(tx); err != nil {
					return err
				}
				tx.Record("marker", storetest.Added{N: 1})
				return nil
			})
			what := place.name + " with " + name
			var ie *store.InvalidError
			var pe *pgconn.PgError
			if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ie) || !errors.As(err, &pe) {
				t.Fatalf("%s: got %v, want a *store.InvalidError wrapping a *pgconn.PgError", what, err)
			}
			if pe.Code[:2] != "22" || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("%s: %v (SQLSTATE %s) must be a permanent data exception", what, err, pe.Code)
			}
		}
	}
	if head, err := st.Head(ctx); err != nil || head != 0 {
		t.Fatalf("Head = %v, %v; want 0: nothing may be committed", head, err)
	}
}
