package storetest

import (
	"context"
	"errors"
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

func mustUpdate(t *testing.T, h Harness, fn func(tx store.Tx) error) event.Position {
	t.Helper()
	pos, err := h.Store.Update(context.Background(), fn)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	return pos
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
