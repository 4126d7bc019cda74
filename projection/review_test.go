package projection_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// A panic whose value is a connection error is a bug in the projector, not
// an outage: it goes to the policy instead of being retried forever.
func TestPanicWithUnavailableValueGoesToThePolicy(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	r := projection.NewRunner(st)
	defer r.Close()
	p := projection.Named("p", event.HandlerFunc(func(context.Context, event.Record) error {
		panic(fmt.Errorf("dial: %w", store.ErrUnavailable))
	}))
	add(t, r, p, fast(2))
	start(t, r)
	pos := appendN(t, st, 1, 1)
	err := r.Sync(ctx, pos)
	require.ErrorIs(t, err, projection.ErrStopped)
	require.ErrorIs(t, err, event.ErrPanic)
	assert.Equal(t, projection.Stopped, statusOf(t, r, "p").State)
}

// An inline projector whose infrastructure retry was cut short by a
// deadline is not reported unavailable once it applies records again.
func TestInlineUnavailableClearsAfterSuccess(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	r := projection.NewRunner(st)
	defer r.Close()
	f := &flaky{name: "f", err: fmt.Errorf("dial: %w", store.ErrUnavailable)}
	f.left.Store(1_000_000)
	add(t, r, f)
	start(t, r)
	pos := appendN(t, st, 1, 1)
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := r.Sync(sctx, pos)
	cancel()
	require.Error(t, err)
	require.Equal(t, projection.Unavailable, statusOf(t, r, "f").State)
	f.left.Store(0) // the database is back
	require.NoError(t, r.Sync(ctx, pos))
	pos = appendN(t, st, 1, 1)
	require.NoError(t, r.Sync(ctx, pos))
	s := statusOf(t, r, "f")
	assert.Equal(t, projection.Running, s.State)
	assert.NoError(t, s.Err)
}

// A version rebuild that fails at Start leaves the runner unstarted, so no
// command commits and no checkpoint is saved at the new version over the
// old view.
func TestFailedStartRebuildLeavesTheRunnerUnstarted(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	cps := &projection.MemoryCheckpoints{}
	require.NoError(t, cps.Save(ctx, "v", projection.Checkpoint{Position: 1, Version: 1}))
	appendN(t, st, 2, 1)
	r := projection.NewRunner(st, projection.WithCheckpoints(cps))
	defer r.Close()
	require.NoError(t, r.Add(failingShadow{}, projection.WithVersion(2)))
	require.Error(t, r.Start(ctx))
	require.Error(t, r.Ready(), "a runner whose start-up rebuild failed refuses dispatches")
	require.Error(t, r.Sync(ctx, 2))
	cp, err := cps.Load(ctx, "v")
	require.NoError(t, err)
	assert.Equal(t, projection.Checkpoint{Position: 1, Version: 1}, cp, "the checkpoint stays at the old version")
}

type failingShadow struct{}

func (failingShadow) Name() string                               { return "v" }
func (failingShadow) Handle(context.Context, event.Record) error { return nil }
func (failingShadow) Shadow(context.Context) (projection.Shadow, error) {
	return projection.Shadow{}, errors.New("no room for a shadow")
}

// Rebuild honours its context while the live projector holds the delivery
// lock (an async handler stuck on a record).
func TestRebuildHonoursContextWhileLiveDeliveryIsStuck(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	v := newSumView("stuck")
	p := &stuckView{sumView: v, release: release, entered: entered}
	r := projection.NewRunner(st, projection.WithCloseTimeout(100*time.Millisecond))
	defer func() { close(release); r.Close() }()
	add(t, r, p, projection.AsAsync())
	start(t, r)
	appendN(t, st, 1, 1)
	<-entered // the async goroutine holds the lock now
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := r.Rebuild(rctx, "stuck")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(began), 2*time.Second)
}

type stuckView struct {
	*sumView
	release <-chan struct{}
	entered chan<- struct{}
}

func (s *stuckView) Handle(ctx context.Context, rec event.Record) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return s.sumView.Handle(ctx, rec)
}
