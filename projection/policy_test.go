package projection_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
)

func TestStopPolicy(t *testing.T) {
	ctx := context.Background()
	checkStopped := func(t *testing.T, r *projection.Runner, name string, at event.Position) projection.Status {
		t.Helper()
		s := statusOf(t, r, name)
		var se *projection.StoppedError
		if s.State != projection.Stopped || !errors.Is(s.Err, projection.ErrStopped) || !errors.As(s.Err, &se) {
			t.Fatalf("status = %+v, want Stopped with a *StoppedError", s)
		}
		if se.Position != at || se.Projector != name || !errors.Is(se, errFault) {
			t.Errorf("StoppedError = %+v, want %s at %v caused by errFault", se, name, at)
		}
		if s.Checkpoint != at-1 {
			t.Errorf("checkpoint = %v, want %v", s.Checkpoint, at-1)
		}
		return s
	}

	t.Run("Async", func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 10, 3)
		r := projection.NewRunner(st)
		bad, good := newSumView("bad"), newSumView("good")
		bad.failAt.Store(5)
		add(t, r, bad, projection.AsAsync(), fast(3))
		add(t, r, good, projection.AsAsync())
		start(t, r)

		waitFor(t, r, "good", 10)
		eventually(t, "bad stopped", func() bool { return statusOf(t, r, "bad").State == projection.Stopped })
		s := checkStopped(t, r, "bad", 5)
		if s.Behind != 6 || s.Head != 10 {
			t.Errorf("Behind %d, Head %v; want 6, 10", s.Behind, s.Head)
		}
		if got := bad.tries.Load(); got != 3 {
			t.Errorf("event tried %d times, want 3", got)
		}
		// The others go on; the stopped one stays exactly there.
		waitFor(t, r, "good", appendN(t, st, 5, 1))
		checkStopped(t, r, "bad", 5)
		if bad.Count() != 4 {
			t.Errorf("stopped view applied %d events, want 4", bad.Count())
		}

		bad.failAt.Store(0) // the fix
		if err := r.Resume(ctx, "bad"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, r, "bad", 15)
		if bad.Total() != sumTo(15) || !maps.Equal(bad.Parts(), good.Parts()) {
			t.Errorf("after Resume total = %d, want %d", bad.Total(), sumTo(15))
		}
		bad.checkApplied(t)
		if s := statusOf(t, r, "bad"); s.State != projection.Running || s.Err != nil {
			t.Errorf("after Resume status = %+v", s)
		}
	})

	t.Run("Inline", func(t *testing.T) {
		st := newMemory(t)
		r := projection.NewRunner(st)
		bad, good := newSumView("bad"), newSumView("good")
		bad.failAt.Store(5)
		add(t, r, bad, fast(2))
		add(t, r, good)
		start(t, r)
		bus := newBus(st, r)
		for i := 1; i <= 4; i++ {
			if _, err := command.Dispatch(ctx, bus, addCmd{Stream: "a", N: i}); err != nil {
				t.Fatal(err)
			}
		}
		for i := 5; i <= 6; i++ {
			res, err := command.Dispatch(ctx, bus, addCmd{Stream: "a", N: i})
			if !errors.Is(err, command.ErrAfterCommit) || !errors.Is(err, projection.ErrStopped) || res.Position != event.Position(i) {
				t.Fatalf("dispatch %d: %v at %v; want a committed dispatch with ErrStopped", i, err, res.Position)
			}
			if good.Count() != i {
				t.Errorf("the healthy inline view has %d events, want %d", good.Count(), i)
			}
		}
		checkStopped(t, r, "bad", 5)
		if got := bad.tries.Load(); got != 2 {
			t.Errorf("event tried %d times, want 2 (stopped projectors are not retried on each Sync)", got)
		}
		bad.failAt.Store(0)
		if err := r.Resume(ctx, "bad"); err != nil {
			t.Fatal(err)
		}
		if bad.Total() != sumTo(6) {
			t.Errorf("after Resume total = %d, want %d", bad.Total(), sumTo(6))
		}
		if _, err := command.Dispatch(ctx, bus, addCmd{Stream: "a", N: 7}); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(bad.Parts(), good.Parts()) || bad.Count() != 7 {
			t.Errorf("resumed view %v, healthy %v", bad.Parts(), good.Parts())
		}
		bad.checkApplied(t)
	})
}

func TestPanicIsAFailure(t *testing.T) {
	t.Run("Stop", func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 5, 5)
		r := projection.NewRunner(st)
		v := newSumView("v")
		v.failAt.Store(3)
		v.panics.Store(true)
		add(t, r, v, projection.AsAsync(), fast(2))
		start(t, r)
		eventually(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
		s := statusOf(t, r, "v")
		var pe *event.PanicError
		if !errors.Is(s.Err, projection.ErrStopped) || !errors.Is(s.Err, event.ErrPanic) || !errors.As(s.Err, &pe) || len(pe.Stack) == 0 {
			t.Errorf("Err = %v, want ErrStopped wrapping a *PanicError with its stack", s.Err)
		}
		if s.Checkpoint != 2 || v.tries.Load() != 2 {
			t.Errorf("checkpoint %v tries %d, want 2, 2", s.Checkpoint, v.tries.Load())
		}
	})
	t.Run("Park", func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 5, 5)
		r := projection.NewRunner(st)
		p := projection.Named("p", event.HandlerFunc(func(_ context.Context, rec event.Record) error {
			if rec.Position == 4 {
				panic(errFault) // a panic with an error value unwraps to it
			}
			return nil
		}))
		add(t, r, p, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(1))
		start(t, r)
		waitFor(t, r, "p", 5)
		parked, _ := r.Parked("p")
		if len(parked) != 1 || !errors.Is(parked[0].Err, event.ErrPanic) || !errors.Is(parked[0].Err, errFault) {
			t.Errorf("parked = %+v", parked)
		}
	})
}

func TestRetryWithBackoff(t *testing.T) {
	st := newMemory(t)
	appendN(t, st, 3, 3)
	var fails atomic.Int64
	var applied []event.Position
	p := projection.Named("flaky", event.HandlerFunc(func(_ context.Context, rec event.Record) error {
		if rec.Position == 2 && fails.Add(1) <= 2 {
			return errFault // transient: fails twice, then works
		}
		applied = append(applied, rec.Position)
		return nil
	}))
	var pauses []int
	var mu sync.Mutex
	backoff := func(n int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		pauses = append(pauses, n)
		return time.Millisecond
	}
	r := projection.NewRunner(st)
	add(t, r, p, projection.AsAsync(), projection.WithRetry(3, backoff))
	start(t, r)
	waitFor(t, r, "flaky", 3)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(pauses, []int{1, 2}) {
		t.Errorf("backoff called with %v, want [1 2]", pauses)
	}
	if !slices.Equal(applied, []event.Position{1, 2, 3}) {
		t.Errorf("applied %v", applied)
	}
	if s := statusOf(t, r, "flaky"); s.Err != nil || s.State != projection.Running {
		t.Errorf("status %+v", s)
	}
	if projection.DefaultBackoff(1) != 10*time.Millisecond || projection.DefaultBackoff(2) != 20*time.Millisecond || projection.DefaultBackoff(30) != time.Second {
		t.Error("DefaultBackoff does not double from 10ms to 1s")
	}
}
