package projection_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bufView buffers what Handle accepts and makes it durable in FlushBatch,
// as a remote self-checkpointed store does.
type bufView struct {
	mu       sync.Mutex
	pending  []event.Record
	durable  []event.Position // applied positions, durable
	cp       event.Position   // durable checkpoint
	flushes  int
	failNext int   // flushes to fail
	failWith error // error of a failed flush
}

func (v *bufView) Name() string { return "buf" }

func (v *bufView) Handle(_ context.Context, rec event.Record) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if rec.Position <= v.cp {
		return nil
	}
	v.pending = append(v.pending, rec)
	return nil
}

func (v *bufView) LoadCheckpoint(context.Context) (projection.Checkpoint, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return projection.Checkpoint{Position: v.cp}, nil
}

func (v *bufView) FlushBatch(_ context.Context, pos event.Position) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.flushes++
	if v.failNext > 0 {
		v.failNext--
		v.pending = nil // the contract: drop the buffer on failure
		return v.failWith
	}
	for _, r := range v.pending {
		v.durable = append(v.durable, r.Position)
	}
	v.pending, v.cp = nil, pos
	return nil
}

func (v *bufView) state() ([]event.Position, event.Position) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]event.Position(nil), v.durable...), v.cp
}

// TestBatchFlusherRedeliversFailedFlush: a batch whose flush fails is
// delivered again, so every record becomes durable exactly once, and
// WaitFor returns only once the flush made its position durable.
func TestBatchFlusherRedeliversFailedFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		v := &bufView{failNext: 2, failWith: errors.New("connection reset")}
		r := projection.NewRunner(st, projection.WithBatchSize(4))
		add(t, r, v, projection.AsAsync())
		start(t, r)
		head := appendN(t, st, 10, 10)
		waitFor(t, r, "buf", head)
		durable, cp := v.state()
		assert.Equal(t, head, cp, "durable checkpoint after WaitFor")
		want := make([]event.Position, 0, head)
		for p := event.Position(1); p <= head; p++ {
			want = append(want, p)
		}
		assert.Equal(t, want, durable, "every record durable exactly once, in order")
		assert.Equal(t, head, statusOf(t, r, "buf").Checkpoint)
	})
}

// TestBatchFlusherPositionWaitsForFlush: the runner does not publish a
// batch's position before FlushBatch returns. Every flush fails until the
// test lifts the failure: the failed Sync hands its position to a
// background catch-up that retries, and a retry that succeeded before the
// check would make the check race with it.
func TestBatchFlusherPositionWaitsForFlush(t *testing.T) {
	st := newMemory(t)
	v := &bufView{}
	r := projection.NewRunner(st)
	add(t, r, v) // inline
	start(t, r)
	head := appendN(t, st, 3, 3)
	require.NoError(t, r.Sync(context.Background(), head))
	_, cp := v.state()
	assert.Equal(t, head, cp)

	v.mu.Lock()
	v.failNext, v.failWith = math.MaxInt, errors.New("connection reset")
	v.mu.Unlock()
	head2 := appendN(t, st, 2, 2)
	err := r.Sync(context.Background(), head2)
	require.Error(t, err, "Sync with a failing flush")
	assert.Equal(t, head, statusOf(t, r, "buf").Checkpoint, "position published although the flush failed")
	v.mu.Lock()
	v.failNext = 0
	v.mu.Unlock()
	require.NoError(t, r.Sync(context.Background(), head2), "Sync again")
	durable, cp := v.state()
	assert.Equal(t, head2, cp)
	assert.Len(t, durable, int(head2))
}

// TestBatchFlusherConflictStops: a flush refused because the checkpoint
// moved under the projector stops it.
func TestBatchFlusherConflictStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		v := &bufView{failNext: 1, failWith: &store.ConflictError{Table: "checkpoints", Key: "buf", Expected: 0, Actual: 7}}
		r := projection.NewRunner(st)
		add(t, r, v, projection.AsAsync())
		start(t, r)
		appendN(t, st, 3, 3)
		settled(t, "the projector to stop", func() bool { return statusOf(t, r, "buf").State == projection.Stopped })
		s := statusOf(t, r, "buf")
		require.ErrorIs(t, s.Err, store.ErrConflict)
		assert.Zero(t, s.Checkpoint)
	})
}
