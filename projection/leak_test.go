package projection_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// settle waits until the goroutine count is back to base.
func settle(t *testing.T, base int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%s: %d goroutines, baseline %d\n%s", what, n, base, buf)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNoGoroutineLeaks(t *testing.T) {
	setup := func(t *testing.T) (*projection.Runner, func() event.Position) {
		st := newMemory(t)
		appendN(t, st, 500, 50)
		r := projection.NewRunner(st, projection.WithBatchSize(32))
		for _, name := range []string{"a", "b", "c"} {
			add(t, r, newSumView(name), projection.AsAsync())
		}
		bad := newSumView("stopped")
		bad.failAt.Store(10)
		add(t, r, bad, projection.AsAsync(), fast(1)) // parked on Resume
		add(t, r, newSumView("inline"))
		return r, func() event.Position { return appendN(t, st, 50, 5) }
	}

	t.Run("Close", func(t *testing.T) {
		base := runtime.NumGoroutine()
		r, more := setup(t)
		require.NoError(t, r.Start(context.Background()))
		waitFor(t, r, "a", 500)
		waitFor(t, r, "c", more())
		r.Close()
		settle(t, base, "after Close")
	})

	t.Run("ContextCancel", func(t *testing.T) {
		base := runtime.NumGoroutine()
		r, more := setup(t)
		ctx, cancel := context.WithCancel(context.Background())
		require.NoError(t, r.Start(ctx))
		waitFor(t, r, "b", more())
		cancel()
		settle(t, base, "after cancelling Start's context")
		// The async projectors are gone and say so; waiters are not left
		// hanging.
		s := statusOf(t, r, "a")
		assert.EqualValues(t, projection.Closed, s.State, "async state after cancel = %v, want Closed", s.State)
		err := r.WaitFor(context.Background(), "a", 10_000)
		assert.ErrorIs(t, err, projection.ErrNotReached, "WaitFor after cancel = %v", err)
		assert.ErrorIs(t, err, store.ErrClosed, "WaitFor after cancel = %v", err)
		err = r.Resume(context.Background(), "stopped")
		assert.ErrorIs(t, err, store.ErrClosed, "Resume of an async projector after cancel = %v, want ErrClosed", err)
		r.Close()
		settle(t, base, "after Close")
	})

	t.Run("WaitersAndRebuild", func(t *testing.T) {
		base := runtime.NumGoroutine()
		r, _ := setup(t)
		require.NoError(t, r.Start(context.Background()))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := r.WaitFor(ctx, "", 10_000)
		assert.ErrorIs(t, err, projection.ErrNotReached, "WaitFor = %v", err)
		require.NoError(t, r.Rebuild(context.Background(), "a"))
		r.Close()
		settle(t, base, "after WaitFor timeouts and a rebuild")
	})
}
