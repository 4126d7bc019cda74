package faults_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store/pgstore"
)

var errPoison = errors.New("faults: poison event")

// TestReplayParked parks one event on an in-memory projector and on a
// self-checkpointing SQL projector (pgstore.NewProjector), lets later events
// move both checkpoints past it, fixes the fault and replays it: the event
// must be in both views afterwards and in neither dead-letter list.
func TestReplayParked(t *testing.T) {
	pool := newPool(t, 8)
	schema := newSchema(t, pool)
	st := newStore(t, pool, registry(t, false), schema)
	createApplied(t, pool, schema)
	ins := insertApplied(schema)

	var failing atomic.Bool
	failing.Store(true)
	sqlProj := pgstore.NewProjector(st, "sqlview", func(ctx context.Context, tx pgx.Tx, rec event.Record) error {
		if rec.Data.(Tick).Poison && failing.Load() {
			return errPoison
		}
		_, err := tx.Exec(ctx, ins, int64(rec.Position))
		return err
	})
	mem := newMemView()
	memProj := projection.Named("memview", event.HandlerFunc(func(_ context.Context, rec event.Record) error {
		if rec.Data.(Tick).Poison && failing.Load() {
			return errPoison
		}
		mem.add(rec.Position)
		return nil
	}))
	r := projection.NewRunner(st, projection.WithCheckpoints(st))
	for _, p := range []projection.Projector{sqlProj, memProj} {
		if err := r.Add(p, projection.AsAsync(), projection.WithPolicy(projection.Park), projection.WithRetry(1, nil)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	for i := range 3 {
		record(t, st, Tick{Seq: i})
	}
	poison := record(t, st, Tick{Seq: 3, Poison: true})
	var last event.Position
	for i := 4; i < 7; i++ {
		last = record(t, st, Tick{Seq: i})
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := r.WaitFor(wctx, "", last); err != nil {
		t.Fatalf("WaitFor the events after the poison one: %v", err)
	}
	for _, name := range []string{"sqlview", "memview"} {
		parked, err := r.Parked(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(parked) != 1 || parked[0].Record.Position != poison {
			t.Fatalf("%s parked %v, want exactly position %v", name, parked, poison)
		}
	}

	failing.Store(false)
	logged, err := logPositions(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		view func() (map[event.Position]int, error)
	}{
		{"memview", func() (map[event.Position]int, error) { return mem.snapshot(), nil }},
		{"sqlview", func() (map[event.Position]int, error) { return sqlApplied(ctx, pool, schema) }},
	} {
		replayErr := r.Replay(ctx, tc.name, poison)
		parked, _ := r.Parked(tc.name)
		view, err := tc.view()
		if err != nil {
			t.Fatal(err)
		}
		lost, dup := compare(logged, view)
		summary(t, "replay-"+tc.name, "written", len(logged), "lost", lost, "duplicated", dup,
			"parked", len(parked), "replay_err", replayErr != nil, "has_event", view[poison] == 1)
		if replayErr != nil {
			t.Errorf("%s: Replay(%v): %v", tc.name, poison, replayErr)
		}
		if view[poison] != 1 {
			t.Errorf("%s: view applied the replayed position %v %d times, want 1 (Replay returned %v, parked now %d)",
				tc.name, poison, view[poison], replayErr, len(parked))
		}
		if lost != 0 || dup != 0 {
			t.Errorf("%s: lost %d, duplicated %d of %d", tc.name, lost, dup, len(logged))
		}
		if len(parked) != 0 {
			t.Errorf("%s: still parked after a successful replay: %v", tc.name, parked)
		}
	}
	cp, err := sqlProj.LoadCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Position < last {
		t.Errorf("the SQL projector's checkpoint moved back to %v after the replay (was at %v or later)", cp.Position, last)
	}
}
