package projection_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

func TestWaitFor(t *testing.T) {
	ctx := context.Background()
	t.Run("Prompt", func(t *testing.T) {
		st := newMemory(t)
		r := projection.NewRunner(st)
		add(t, r, newSumView("v"), projection.AsAsync())
		start(t, r)
		for i := 1; i <= 5; i++ {
			got := make(chan time.Time, 1)
			go func() {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := r.WaitFor(wctx, "v", event.Position(i)); err != nil {
					t.Error(err)
				}
				got <- time.Now()
			}()
			time.Sleep(5 * time.Millisecond) // let it block first
			committed := time.Now()
			appendN(t, st, 1, 1)
			if d := (<-got).Sub(committed); d > time.Second {
				t.Errorf("WaitFor returned %v after the commit", d)
			}
		}
		// Already reached: nil even with a done context.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := r.WaitFor(cctx, "v", 5); err != nil {
			t.Errorf("WaitFor of a reached position = %v", err)
		}
	})

	t.Run("Stopped", func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 3, 3)
		r := projection.NewRunner(st)
		v := newSumView("bad")
		v.failAt.Store(2)
		add(t, r, v, projection.AsAsync(), fast(1))
		start(t, r)
		eventually(t, "stopped", func() bool { return statusOf(t, r, "bad").State == projection.Stopped })
		wctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		err := r.WaitFor(wctx, "bad", 3)
		var nr *projection.NotReachedError
		if !errors.Is(err, projection.ErrNotReached) || !errors.As(err, &nr) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitFor = %v, want a *NotReachedError at the deadline", err)
		}
		if nr.State != projection.Stopped || !errors.Is(nr.Cause, projection.ErrStopped) || nr.Reached != 1 || nr.Want != 3 || nr.Projector != "bad" {
			t.Errorf("NotReachedError = %+v", nr)
		}
		if !errors.Is(err, projection.ErrStopped) {
			t.Error("the error does not unwrap to ErrStopped")
		}
	})

	t.Run("AllProjectors", func(t *testing.T) {
		st := newMemory(t)
		r := projection.NewRunner(st)
		fastV, slow := newSumView("fast"), newSumView("slow")
		slow.gate, slow.gateAt = make(chan struct{}), 2
		add(t, r, fastV, projection.AsAsync())
		add(t, r, slow, projection.AsAsync())
		inl := newSumView("inline")
		add(t, r, inl)
		start(t, r)
		head := appendN(t, st, 3, 1) // not through Sync: WaitFor brings the inline one up
		all := make(chan error, 1)
		go func() { all <- r.WaitFor(ctx, "", head) }()
		waitFor(t, r, "fast", head)
		select {
		case err := <-all:
			t.Fatalf("WaitFor(\"\") returned %v while a projector lags", err)
		case <-time.After(20 * time.Millisecond):
		}
		close(slow.gate)
		if err := <-all; err != nil {
			t.Fatal(err)
		}
		for _, v := range []*sumView{fastV, slow, inl} {
			if v.Total() != sumTo(3) {
				t.Errorf("%s total %d", v.name, v.Total())
			}
		}
	})

	t.Run("UnknownAndClosed", func(t *testing.T) {
		st := newMemory(t)
		r := projection.NewRunner(st)
		add(t, r, newSumView("v"), projection.AsAsync())
		start(t, r)
		if err := r.WaitFor(ctx, "nope", 1); !hasText(err, "unknown projector") {
			t.Errorf("unknown = %v", err)
		}
		waiting := make(chan error, 1)
		go func() { waiting <- r.WaitFor(ctx, "v", 1) }() // no deadline
		time.Sleep(5 * time.Millisecond)
		r.Close()
		err := <-waiting
		var nr *projection.NotReachedError
		if !errors.Is(err, store.ErrClosed) || !errors.As(err, &nr) || nr.State != projection.Closed {
			t.Errorf("WaitFor across Close = %v, want ErrNotReached with ErrClosed", err)
		}
	})
}
