package projection_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/projection/projectiontest"
	"github.com/cqrskit/cqrs/store"
)

func TestMemoryCheckpoints(t *testing.T) {
	projectiontest.RunCheckpointStore(t, func(*testing.T) projection.CheckpointStore {
		return &projection.MemoryCheckpoints{}
	})
}

// selfCP stores its checkpoint with its view.
type selfCP struct {
	sumView
	at event.Position
}

func (s *selfCP) LoadCheckpoint(context.Context) (projection.Checkpoint, error) {
	return projection.Checkpoint{Position: s.at}, nil
}

func TestSelfCheckpointer(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 5, 5)
	cps := &projection.MemoryCheckpoints{}
	p := &selfCP{sumView: *newSumView("self"), at: 3}
	r := projection.NewRunner(st, projection.WithCheckpoints(cps))
	add(t, r, p, projection.AsAsync())
	start(t, r)
	waitFor(t, r, "self", 5)
	if a := p.Applied(); !slices.Equal(a, []event.Position{4, 5}) {
		t.Errorf("applied %v, want [4 5]", a)
	}
	if cp, _ := cps.Load(ctx, "self"); cp != (projection.Checkpoint{}) {
		t.Errorf("runner saved %+v for a SelfCheckpointer", cp)
	}
}

// TestCheckpointNeverMovesBackwards: a runner whose checkpoint was moved
// past it by another runner stops with the conflict instead of saving a
// lower position.
func TestCheckpointNeverMovesBackwards(t *testing.T) {
	st := newMemory(t)
	cps := &projection.MemoryCheckpoints{}
	r := projection.NewRunner(st, projection.WithCheckpoints(cps))
	v := newSumView("p")
	add(t, r, v, projection.AsAsync())
	start(t, r)
	// Another runner of the same projector got to 10 meanwhile.
	if err := cps.Save(context.Background(), "p", projection.Checkpoint{Position: 10}); err != nil {
		t.Fatal(err)
	}
	appendN(t, st, 3, 3)
	eventually(t, "the projector to stop", func() bool { return statusOf(t, r, "p").State == projection.Stopped })
	s := statusOf(t, r, "p")
	var ce *store.ConflictError
	if !errors.As(s.Err, &ce) || ce.Table != "checkpoints" || ce.Key != "p" {
		t.Errorf("Status.Err = %v, want a *store.ConflictError on checkpoints/p", s.Err)
	}
	if cp, _ := cps.Load(context.Background(), "p"); cp.Position != 10 {
		t.Errorf("checkpoint = %v, want 10 (never backwards)", cp.Position)
	}
}
