package projection_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/projection/projectiontest"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	a := p.Applied()
	assert.Equal(t, []event.Position{4, 5}, a, "applied %v, want [4 5]", a)
	cp, _ := cps.Load(ctx, "self")
	assert.EqualValues(t, (projection.Checkpoint{}), cp, "runner saved %+v for a SelfCheckpointer", cp)
}

// TestCheckpointNeverMovesBackwards: a runner whose checkpoint was moved
// past it by another runner stops with the conflict instead of saving a
// lower position.
func TestCheckpointNeverMovesBackwards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		cps := &projection.MemoryCheckpoints{}
		r := projection.NewRunner(st, projection.WithCheckpoints(cps))
		v := newSumView("p")
		add(t, r, v, projection.AsAsync())
		start(t, r)
		// Another runner of the same projector got to 10 meanwhile.
		require.NoError(t, cps.Save(context.Background(), "p", projection.Checkpoint{Position: 10}))
		appendN(t, st, 3, 3)
		settled(t, "the projector to stop", func() bool { return statusOf(t, r, "p").State == projection.Stopped })
		s := statusOf(t, r, "p")
		var ce *store.ConflictError
		require.ErrorAs(t, s.Err, &ce, "Status.Err = %v, want a *store.ConflictError on checkpoints/p", s.Err)
		assert.EqualValues(t, "checkpoints", ce.Table, "Status.Err = %v, want a *store.ConflictError on checkpoints/p", s.Err)
		assert.EqualValues(t, "p", ce.Key, "Status.Err = %v, want a *store.ConflictError on checkpoints/p", s.Err)
		cp, _ := cps.Load(context.Background(), "p")
		assert.EqualValues(t, 10, cp.Position, "checkpoint = %v, want 10 (never backwards)", cp.Position)
	})
}
