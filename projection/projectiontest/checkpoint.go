package projectiontest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// RunCheckpointStore is the conformance suite for projection.CheckpointStore,
// shaped like testing/slogtest.Run: call it from a test of your own.
// newStore returns an empty store for one subtest (register cleanup with
// t.Cleanup). The in-memory projection.MemoryCheckpoints and every durable
// adapter must pass it:
//
//	func TestCheckpoints(t *testing.T) {
//		projectiontest.RunCheckpointStore(t, func(t *testing.T) projection.CheckpointStore {
//			return pgstore.NewCheckpoints(testDB(t))
//		})
//	}
//
// It checks that an unknown name loads as the zero Checkpoint, that Save
// then Load round-trips Position and Version, that Save overwrites, that
// Save never moves a checkpoint backwards (a lower position fails with a
// *store.ConflictError{Table: "checkpoints", Key: name}), that
// names are independent, that concurrent saves to distinct names are safe
// (run it with -race), and that a cancelled context either is ignored or
// makes the call fail with an error matching context.Canceled, never
// anything else.
//
// When the store also implements projection.ParkStore, the ParkStore
// subtests check it the same way (otherwise they are skipped): an unknown
// name has no dead letters; Park then LoadParked round-trips Record.Position
// (including one above 1<<63), the text of Err (nil stays nil), Attempts
// and At (given at microsecond
// precision and compared with time.Equal, so a store may keep times in UTC
// and to the microsecond); Park at a parked position replaces it; LoadParked
// lists in position order, whatever the order of the calls that parked;
// Unpark removes one dead letter and succeeds when there is none;
// ReplaceParked replaces the whole list, also with an empty one; results
// and arguments are not shared with the store; names are independent of
// each other and of checkpoints; concurrent parks are safe; and a cancelled
// context is ignored or fails the call with context.Canceled, writing
// nothing.
func RunCheckpointStore(t *testing.T, newStore func(t *testing.T) projection.CheckpointStore) {
	ctx := context.Background()
	load := func(t *testing.T, s projection.CheckpointStore, name string) projection.Checkpoint {
		t.Helper()
		cp, err := s.Load(ctx, name)
		if err != nil {
			t.Fatalf("Load(%q): %v", name, err)
		}
		return cp
	}
	save := func(t *testing.T, s projection.CheckpointStore, name string, cp projection.Checkpoint) {
		t.Helper()
		if err := s.Save(ctx, name, cp); err != nil {
			t.Fatalf("Save(%q, %+v): %v", name, cp, err)
		}
	}

	t.Run("UnknownIsZero", func(t *testing.T) {
		s := newStore(t)
		if cp := load(t, s, "never-saved"); cp != (projection.Checkpoint{}) {
			t.Errorf("Load of an unknown name = %+v, want the zero Checkpoint", cp)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		want := projection.Checkpoint{Position: 42, Version: 7}
		save(t, s, "p", want)
		if got := load(t, s, "p"); got != want {
			t.Errorf("Load after Save = %+v, want %+v", got, want)
		}
		big := projection.Checkpoint{Position: 1<<63 + 5, Version: -1}
		save(t, s, "big", big)
		if got := load(t, s, "big"); got != big {
			t.Errorf("Load after Save = %+v, want %+v", got, big)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		s := newStore(t)
		save(t, s, "p", projection.Checkpoint{Position: 10, Version: 1})
		save(t, s, "p", projection.Checkpoint{Position: 11, Version: 1})
		want := projection.Checkpoint{Position: 11, Version: 2} // a rebuild keeps the position, changes the version
		save(t, s, "p", want)
		if got := load(t, s, "p"); got != want {
			t.Errorf("Load after overwrites = %+v, want %+v", got, want)
		}
	})

	t.Run("NeverBackwards", func(t *testing.T) {
		s := newStore(t)
		save(t, s, "p", projection.Checkpoint{Position: 10, Version: 1})
		err := s.Save(ctx, "p", projection.Checkpoint{Position: 9, Version: 1})
		var ce *store.ConflictError
		if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) {
			t.Fatalf("Save of a lower position = %v, want a *store.ConflictError", err)
		}
		if ce.Table != "checkpoints" || ce.Key != "p" {
			t.Errorf("ConflictError = %+v, want Table \"checkpoints\", Key \"p\"", *ce)
		}
		if got, want := load(t, s, "p"), (projection.Checkpoint{Position: 10, Version: 1}); got != want {
			t.Errorf("after a refused Save: %+v, want %+v", got, want)
		}
		big := projection.Checkpoint{Position: 1<<63 + 1, Version: 1}
		save(t, s, "p", big) // positions are unsigned
		if err := s.Save(ctx, "p", projection.Checkpoint{Position: 11, Version: 1}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("Save below a position above 1<<63 = %v, want ErrConflict", err)
		}
		if got := load(t, s, "p"); got != big {
			t.Errorf("after a refused Save: %+v, want %+v", got, big)
		}
		// Concurrent savers: the stored position is the highest saved.
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range 20 {
					_ = s.Save(ctx, "q", projection.Checkpoint{Position: event.Position(1 + i*8 + w)})
				}
			})
		}
		wg.Wait()
		if got := load(t, s, "q"); got.Position != 160 {
			t.Errorf("after concurrent saves: %v, want 160", got.Position)
		}
	})

	t.Run("NamesIndependent", func(t *testing.T) {
		s := newStore(t)
		save(t, s, "a", projection.Checkpoint{Position: 1, Version: 1})
		save(t, s, "b", projection.Checkpoint{Position: 2, Version: 2})
		save(t, s, "a", projection.Checkpoint{Position: 5, Version: 1})
		if got, want := load(t, s, "a"), (projection.Checkpoint{Position: 5, Version: 1}); got != want {
			t.Errorf("a = %+v, want %+v", got, want)
		}
		if got, want := load(t, s, "b"), (projection.Checkpoint{Position: 2, Version: 2}); got != want {
			t.Errorf("b = %+v, want %+v", got, want)
		}
		if got := load(t, s, "ab"); got != (projection.Checkpoint{}) {
			t.Errorf("ab = %+v, want zero", got)
		}
	})

	t.Run("ConcurrentDistinctNames", func(t *testing.T) {
		s := newStore(t)
		const writers, saves = 8, 50
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				name := fmt.Sprintf("proj-%d", w)
				for i := 1; i <= saves; i++ {
					if err := s.Save(ctx, name, projection.Checkpoint{Position: event.Position(1000*w + i), Version: w}); err != nil {
						errs <- fmt.Errorf("Save(%s): %w", name, err)
						return
					}
					if _, err := s.Load(ctx, name); err != nil {
						errs <- fmt.Errorf("Load(%s): %w", name, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for w := range writers {
			name := fmt.Sprintf("proj-%d", w)
			want := projection.Checkpoint{Position: event.Position(1000*w + saves), Version: w}
			if got := load(t, s, name); got != want {
				t.Errorf("%s = %+v, want %+v", name, got, want)
			}
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		s := newStore(t)
		save(t, s, "p", projection.Checkpoint{Position: 1, Version: 1})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Load(cctx, "p"); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Load with a cancelled context: %v, want nil or an error matching context.Canceled", err)
		}
		err := s.Save(cctx, "p", projection.Checkpoint{Position: 2, Version: 1})
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Save with a cancelled context: %v, want nil or an error matching context.Canceled", err)
		}
		want := projection.Checkpoint{Position: 2, Version: 1}
		if err != nil {
			want.Position = 1 // a failed Save must not have written
		}
		if got := load(t, s, "p"); got != want {
			t.Errorf("after Save with a cancelled context (err %v): %+v, want %+v", err, got, want)
		}
	})

	t.Run("ParkStore", func(t *testing.T) {
		if _, ok := newStore(t).(projection.ParkStore); !ok {
			t.Skip("the store does not implement projection.ParkStore")
		}
		testParkStore(t, newStore)
	})
}
