package projection_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// frozenLog is a log whose calls block until their context is done while
// frozen, like a server stopped with SIGSTOP.
type frozenLog struct {
	*store.Memory
	mu   sync.Mutex
	thaw chan struct{} // nil: not frozen
}

func (l *frozenLog) freeze(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case on && l.thaw == nil:
		l.thaw = make(chan struct{})
	case !on && l.thaw != nil:
		close(l.thaw)
		l.thaw = nil
	}
}

func (l *frozenLog) block(ctx context.Context) error {
	l.mu.Lock()
	thaw := l.thaw
	l.mu.Unlock()
	if thaw == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-thaw:
		return nil
	}
}

func (l *frozenLog) Read(ctx context.Context, after event.Position, dst []event.Record) ([]event.Record, error) {
	if err := l.block(ctx); err != nil {
		return dst, err
	}
	return l.Memory.Read(ctx, after, dst)
}

func (l *frozenLog) Head(ctx context.Context) (event.Position, error) {
	if err := l.block(ctx); err != nil {
		return 0, err
	}
	return l.Memory.Head(ctx)
}

func (l *frozenLog) Wait(ctx context.Context, after event.Position) error {
	if err := l.block(ctx); err != nil {
		return err
	}
	return l.Memory.Wait(ctx, after)
}

// within fails the test unless call returns within d plus a small constant.
// The tests run in synctest bubbles, so d and the fuse pass on the fake
// clock: a call that ignores its context trips the fuse in no wall time.
func within(t *testing.T, what string, d time.Duration, call func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- call(ctx) }()
	select {
	case err := <-done:
		took := time.Since(began)
		assert.LessOrEqual(t, took, d+250*time.Millisecond, "%s took %v, deadline %v", what, took, d)
		return err
	case <-time.After(d + 5*time.Second):
		t.Fatalf("%s still blocked %v after its deadline", what, 5*time.Second)
		return nil
	}
}

// TestBlockingCallsHonourDeadlinesOnFrozenLog: every public blocking call
// returns by its deadline against a frozen log.
func TestBlockingCallsHonourDeadlinesOnFrozenLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		lg := &frozenLog{Memory: st}
		r := projection.NewRunner(lg)
		async, inline := newSumView("async"), newSumView("inline")
		add(t, r, async, projection.AsAsync())
		add(t, r, inline)
		start(t, r)
		head := appendN(t, st, 2, 1)
		waitFor(t, r, "", head)
		lg.freeze(true)
		more := appendN(t, st, 1, 1)
		const d = 200 * time.Millisecond
		err := within(t, "WaitFor(async)", d, func(ctx context.Context) error { return r.WaitFor(ctx, "async", more) })
		assert.ErrorIs(t, err, projection.ErrNotReached, "WaitFor(async) = %v, want ErrNotReached", err)
		err = within(t, "WaitFor(inline)", d, func(ctx context.Context) error { return r.WaitFor(ctx, "inline", more) })
		assert.ErrorIs(t, err, projection.ErrNotReached, "WaitFor(inline) = %v, want ErrNotReached", err)
		err = within(t, "Sync", d, func(ctx context.Context) error { return r.Sync(ctx, more) })
		assert.Error(t, err, "Sync on a frozen log = nil")
		within(t, "Status", d, func(ctx context.Context) error { _, err := r.Status(ctx); return err })
		within(t, "StatusOf", d, func(ctx context.Context) error { _, err := r.StatusOf(ctx, "async"); return err })
		within(t, "Resume", d, func(ctx context.Context) error { return r.Resume(ctx, "inline") })
		within(t, "Rebuild", d, func(ctx context.Context) error { return r.Rebuild(ctx, "async") })
		r2 := projection.NewRunner(lg)
		add(t, r2, newSumView("inline2"))
		within(t, "Start", d, func(ctx context.Context) error { return r2.Start(ctx) })
		assert.NoError(t, within(t, "Close", d, func(context.Context) error { return r2.Close() }))
		lg.freeze(false)
		waitFor(t, r, "", more)
	})
}

// TestStuckInlineProjectorDoesNotBlockOthers: Sync and WaitFor wait for a
// stuck inline projector only until their own deadline.
func TestStuckInlineProjectorDoesNotBlockOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		gate, entered := make(chan struct{}), make(chan struct{})
		var once sync.Once
		h := event.HandlerFunc(func(context.Context, event.Record) error {
			once.Do(func() { close(entered) })
			<-gate
			return nil
		})
		r := projection.NewRunner(st)
		add(t, r, projection.Named("inline", h))
		start(t, r)
		head := appendN(t, st, 1, 1)
		stuck := make(chan error, 1)
		go func() { stuck <- r.Sync(context.Background(), head) }()
		<-entered
		const d = 300 * time.Millisecond
		err := within(t, "Sync", d, func(ctx context.Context) error { return r.Sync(ctx, head) })
		assert.ErrorIs(t, err, context.DeadlineExceeded, "Sync = %v, want DeadlineExceeded", err)
		err = within(t, "WaitFor", d, func(ctx context.Context) error { return r.WaitFor(ctx, "inline", head) })
		assert.ErrorIs(t, err, projection.ErrNotReached, "WaitFor = %v, want ErrNotReached", err)
		within(t, "Replay", d, func(ctx context.Context) error { return r.Replay(ctx, "inline", head) })
		within(t, "Resume", d, func(ctx context.Context) error { return r.Resume(ctx, "inline") })
		close(gate)
		assert.NoError(t, <-stuck)
	})
}

// TestCloseTimeout: Close returns within its bound, naming the projector
// whose handler never returns, and cancels the handler's context. In a
// synctest bubble the timeout passes on the fake clock.
func TestCloseTimeout(t *testing.T) { synctest.Test(t, testCloseTimeout) }

func testCloseTimeout(t *testing.T) {
	st := newMemory(t)
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{})
	var cancelled atomic.Bool
	h := event.HandlerFunc(func(ctx context.Context, rec event.Record) error {
		close(entered)
		<-ctx.Done()
		cancelled.Store(true)
		<-release // and never return before the test ends
		return nil
	})
	r := projection.NewRunner(st, projection.WithCloseTimeout(200*time.Millisecond))
	add(t, r, projection.Named("stuck", h), projection.AsAsync())
	require.NoError(t, r.Start(context.Background()))
	appendN(t, st, 1, 1)
	<-entered
	began := time.Now()
	err := r.Close()
	took := time.Since(began)
	assert.GreaterOrEqual(t, took, 200*time.Millisecond, "Close gave up before its timeout")
	assert.LessOrEqual(t, took, 300*time.Millisecond, "Close took %v with a 200ms timeout", took)
	assert.ErrorContains(t, err, "stuck", "Close names the stuck projector")
	settled(t, "the handler's context cancelled", cancelled.Load)
}
