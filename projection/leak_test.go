package projection_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
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
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, r, "a", 500)
		waitFor(t, r, "c", more())
		r.Close()
		settle(t, base, "after Close")
	})

	t.Run("ContextCancel", func(t *testing.T) {
		base := runtime.NumGoroutine()
		r, more := setup(t)
		ctx, cancel := context.WithCancel(context.Background())
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, r, "b", more())
		cancel()
		settle(t, base, "after cancelling Start's context")
		// The async projectors are gone and say so; waiters are not left
		// hanging.
		if s := statusOf(t, r, "a"); s.State != projection.Closed {
			t.Errorf("async state after cancel = %v, want Closed", s.State)
		}
		err := r.WaitFor(context.Background(), "a", 10_000)
		if !errors.Is(err, projection.ErrNotReached) || !errors.Is(err, store.ErrClosed) {
			t.Errorf("WaitFor after cancel = %v", err)
		}
		if err := r.Resume(context.Background(), "stopped"); !errors.Is(err, store.ErrClosed) {
			t.Errorf("Resume of an async projector after cancel = %v, want ErrClosed", err)
		}
		r.Close()
		settle(t, base, "after Close")
	})

	t.Run("WaitersAndRebuild", func(t *testing.T) {
		base := runtime.NumGoroutine()
		r, _ := setup(t)
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := r.WaitFor(ctx, "", 10_000); !errors.Is(err, projection.ErrNotReached) {
			t.Errorf("WaitFor = %v", err)
		}
		if err := r.Rebuild(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		r.Close()
		settle(t, base, "after WaitFor timeouts and a rebuild")
	})
}
