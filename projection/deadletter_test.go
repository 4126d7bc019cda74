package projection_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cqrskit/cqrs/projection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParkPolicy(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 10, 4)
	r := projection.NewRunner(st)
	v := newSumView("park")
	v.failAt.Store(5)
	add(t, r, v, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(2))
	start(t, r)

	waitFor(t, r, "park", 10)
	got, want := v.Total(), sumTo(10)-5
	assert.EqualValues(t, want, got, "total %d count %d, want %d and 9: every other event applied", got, v.Count(), want)
	assert.EqualValues(t, 9, v.Count(), "total %d count %d, want %d and 9: every other event applied", got, v.Count(), want)
	parked, err := r.Parked("park")
	require.NoError(t, err, "Parked = %v, %v; want one", parked, err)
	require.Len(t, parked, 1, "Parked = %v, %v; want one", parked, err)
	p := parked[0]
	assert.EqualValues(t, 5, p.Record.Position, "parked = %+v", p)
	assert.ErrorIs(t, p.Err, errFault, "parked = %+v", p)
	assert.EqualValues(t, 2, p.Attempts, "parked = %+v", p)
	assert.NotZero(t, p.At, "parked = %+v", p)
	s := statusOf(t, r, "park")
	assert.EqualValues(t, 1, s.Parked, "status = %+v", s)
	assert.EqualValues(t, projection.Running, s.State, "status = %+v", s)
	assert.Nil(t, s.Err, "status = %+v", s)
	assert.EqualValues(t, 10, s.Checkpoint, "status = %+v", s)
	assert.EqualValues(t, projection.Park, s.Policy, "status = %+v", s)

	// Replay before the fix: still parked, with the new attempt counted.
	err = r.Replay(ctx, "park", 5)
	assert.ErrorIs(t, err, errFault, "Replay before the fix = %v, want errFault", err)
	parked, _ = r.Parked("park")
	assert.Len(t, parked, 1, "after a failed Replay: %+v", parked)
	assert.EqualValues(t, 3, parked[0].Attempts, "after a failed Replay: %+v", parked)
	err = r.Replay(ctx, "park", 6)
	assert.ErrorContains(t, err, "no parked event", "Replay of an unparked position = %v, want ErrNotParked", err)

	v.failAt.Store(0)
	require.NoError(t, r.Replay(ctx, "park", 5))
	parked, _ = r.Parked("park")
	assert.Len(t, parked, 0, "still parked after Replay: %+v", parked)
	assert.EqualValues(t, sumTo(10), v.Total(), "after Replay total %d count %d", v.Total(), v.Count())
	assert.EqualValues(t, 10, v.Count(), "after Replay total %d count %d", v.Total(), v.Count())
	assert.Equal(t, partsTo(10, 1), v.Parts(), "parts %v", v.Parts())
	applied := v.Applied()
	slices.Sort(applied)
	assert.EqualValues(t, 10, len(slices.Compact(applied)), "applied %v: want each of 1..10 once", v.Applied())
	assert.EqualValues(t, 0, statusOf(t, r, "park").Parked, "Status still counts a parked event")
}

// A parked event survives a restart: the checkpoint is past it, but the
// dead letter is in the ParkStore and the record is read back from the log.
func TestParkedEventsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 10, 4)
	cps := &projection.MemoryCheckpoints{}
	v := newSumView("park")
	v.failAt.Store(5)
	r1 := projection.NewRunner(st, projection.WithCheckpoints(cps))
	add(t, r1, v, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(1))
	start(t, r1)
	waitFor(t, r1, "park", 10)
	require.NoError(t, r1.Close())
	dls, _ := cps.LoadParked(ctx, "park")
	require.Len(t, dls, 1, "dead letters after close: %+v", dls)
	require.EqualValues(t, 5, dls[0].Record.Position, "dead letters after close: %+v", dls)
	require.Error(t, dls[0].Err, "dead letters after close: %+v", dls)

	r2 := projection.NewRunner(st, projection.WithCheckpoints(cps))
	add(t, r2, v, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(1))
	start(t, r2)
	defer r2.Close()
	parked, err := r2.Parked("park")
	require.NoError(t, err, "after restart Parked = %+v, %v", parked, err)
	require.Len(t, parked, 1, "after restart Parked = %+v, %v", parked, err)
	require.EqualValues(t, 5, parked[0].Record.Position, "after restart Parked = %+v, %v", parked, err)
	require.EqualValues(t, (added{N: 5}), parked[0].Record.Data, "after restart Parked = %+v, %v", parked, err)
	v.failAt.Store(0)
	require.NoError(t, r2.Replay(ctx, "park", 5))
	dls, _ = cps.LoadParked(ctx, "park")
	assert.Len(t, dls, 0, "dead letter kept after a successful Replay: %+v", dls)
	assert.EqualValues(t, sumTo(10), v.Total(), "total %d, want %d", v.Total(), sumTo(10))
}

type failingParks struct {
	projection.MemoryCheckpoints
}

func (*failingParks) Park(context.Context, string, projection.DeadLetter) error {
	return errors.New("disk full")
}

// If the dead letter cannot be stored, the projector stops at the event
// rather than move its checkpoint past an event recorded nowhere.
func TestParkFailureStopsInsteadOfLosing(t *testing.T) {
	st := newMemory(t)
	appendN(t, st, 10, 10)
	v := newSumView("park")
	v.failAt.Store(5)
	r := projection.NewRunner(st, projection.WithCheckpoints(&failingParks{}))
	add(t, r, v, projection.WithPolicy(projection.Park), fast(1))
	err := r.Start(context.Background())
	defer r.Close()
	var se *projection.StoppedError
	require.ErrorAs(t, err, &se, "Start = %v, want a stop at 5", err)
	require.EqualValues(t, 5, se.Position, "Start = %v, want a stop at 5", err)
	s := statusOf(t, r, "park")
	assert.EqualValues(t, projection.Stopped, s.State, "status = %+v", s)
	assert.EqualValues(t, 4, s.Checkpoint, "status = %+v", s)
}
