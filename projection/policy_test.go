package projection_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStopPolicy(t *testing.T) {
	ctx := context.Background()
	checkStopped := func(t *testing.T, r *projection.Runner, name string, at event.Position) projection.Status {
		t.Helper()
		s := statusOf(t, r, name)
		var se *projection.StoppedError
		require.EqualValues(t, projection.Stopped, s.State, "status = %+v, want Stopped with a *StoppedError", s)
		require.ErrorIs(t, s.Err, projection.ErrStopped, "status = %+v, want Stopped with a *StoppedError", s)
		require.ErrorAs(t, s.Err, &se, "status = %+v, want Stopped with a *StoppedError", s)
		assert.EqualValues(t, at, se.Position, "StoppedError = %+v, want %s at %v caused by errFault", se, name, at)
		assert.EqualValues(t, name, se.Projector, "StoppedError = %+v, want %s at %v caused by errFault", se, name, at)
		assert.ErrorIs(t, se, errFault, "StoppedError = %+v, want %s at %v caused by errFault", se, name, at)
		assert.EqualValues(t, at-1, s.Checkpoint, "checkpoint = %v, want %v", s.Checkpoint, at-1)
		return s
	}

	t.Run("Async", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newMemory(t)
			appendN(t, st, 10, 3)
			r := projection.NewRunner(st)
			bad, good := newSumView("bad"), newSumView("good")
			bad.failAt.Store(5)
			add(t, r, bad, projection.AsAsync(), fast(3))
			add(t, r, good, projection.AsAsync())
			start(t, r)

			waitFor(t, r, "good", 10)
			settled(t, "bad stopped", func() bool { return statusOf(t, r, "bad").State == projection.Stopped })
			s := checkStopped(t, r, "bad", 5)
			assert.EqualValues(t, 6, s.Behind, "Behind %d, Head %v; want 6, 10", s.Behind, s.Head)
			assert.EqualValues(t, 10, s.Head, "Behind %d, Head %v; want 6, 10", s.Behind, s.Head)
			got := bad.tries.Load()
			assert.EqualValues(t, 3, got, "event tried %d times, want 3", got)
			// The others go on; the stopped one stays exactly there.
			waitFor(t, r, "good", appendN(t, st, 5, 1))
			checkStopped(t, r, "bad", 5)
			assert.EqualValues(t, 4, bad.Count(), "stopped view applied %d events, want 4", bad.Count())

			bad.failAt.Store(0) // the fix
			require.NoError(t, r.Resume(ctx, "bad"))
			waitFor(t, r, "bad", 15)
			assert.EqualValues(t, sumTo(15), bad.Total(), "after Resume total = %d, want %d", bad.Total(), sumTo(15))
			assert.Equal(t, good.Parts(), bad.Parts(), "after Resume total = %d, want %d", bad.Total(), sumTo(15))
			bad.checkApplied(t)
			s = statusOf(t, r, "bad")
			assert.EqualValues(t, projection.Running, s.State, "after Resume status = %+v", s)
			assert.Nil(t, s.Err, "after Resume status = %+v", s)
		})
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
			_, err := command.Dispatch(ctx, bus, addCmd{Stream: "a", N: i})
			require.NoError(t, err, err)
		}
		for i := 5; i <= 6; i++ {
			res, err := command.Dispatch(ctx, bus, addCmd{Stream: "a", N: i})
			require.ErrorIs(t, err, command.ErrAfterCommit, "dispatch %d: %v at %v; want a committed dispatch with ErrStopped", i, err, res.Position)
			require.ErrorIs(t, err, projection.ErrStopped, "dispatch %d: %v at %v; want a committed dispatch with ErrStopped", i, err, res.Position)
			require.EqualValues(t, event.Position(i), res.Position, "dispatch %d: %v at %v; want a committed dispatch with ErrStopped", i, err, res.Position)
			assert.EqualValues(t, i, good.Count(), "the healthy inline view has %d events, want %d", good.Count(), i)
		}
		checkStopped(t, r, "bad", 5)
		got := bad.tries.Load()
		assert.EqualValues(t, 2, got, "event tried %d times, want 2 (stopped projectors are not retried on each Sync)", got)
		bad.failAt.Store(0)
		require.NoError(t, r.Resume(ctx, "bad"))
		assert.EqualValues(t, sumTo(6), bad.Total(), "after Resume total = %d, want %d", bad.Total(), sumTo(6))
		_, err := command.Dispatch(ctx, bus, addCmd{Stream: "a", N: 7})
		require.NoError(t, err, err)
		assert.Equal(t, good.Parts(), bad.Parts(), "resumed view %v, healthy %v", bad.Parts(), good.Parts())
		assert.EqualValues(t, 7, bad.Count(), "resumed view %v, healthy %v", bad.Parts(), good.Parts())
		bad.checkApplied(t)
	})
}

func TestPanicIsAFailure(t *testing.T) {
	t.Run("Stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newMemory(t)
			appendN(t, st, 5, 5)
			r := projection.NewRunner(st)
			v := newSumView("v")
			v.failAt.Store(3)
			v.panics.Store(true)
			add(t, r, v, projection.AsAsync(), fast(2))
			start(t, r)
			settled(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
			s := statusOf(t, r, "v")
			var pe *event.PanicError
			assert.ErrorIs(t, s.Err, projection.ErrStopped, "Err = %v, want ErrStopped wrapping a *PanicError with its stack", s.Err)
			assert.ErrorIs(t, s.Err, event.ErrPanic, "Err = %v, want ErrStopped wrapping a *PanicError with its stack", s.Err)
			require.ErrorAs(t, s.Err, &pe, "Err = %v, want ErrStopped wrapping a *PanicError with its stack", s.Err)
			assert.NotZero(t, len(pe.Stack), "Err = %v, want ErrStopped wrapping a *PanicError with its stack", s.Err)
			assert.EqualValues(t, 2, s.Checkpoint, "checkpoint %v tries %d, want 2, 2", s.Checkpoint, v.tries.Load())
			assert.EqualValues(t, 2, v.tries.Load(), "checkpoint %v tries %d, want 2, 2", s.Checkpoint, v.tries.Load())
		})
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
		assert.Len(t, parked, 1, "parked = %+v", parked)
		assert.ErrorIs(t, parked[0].Err, event.ErrPanic, "parked = %+v", parked)
		assert.ErrorIs(t, parked[0].Err, errFault, "parked = %+v", parked)
	})
}

// TestRetryWithBackoff runs in a synctest bubble: the minute-long pauses
// pass on the fake clock, exactly as the backoff asks, in no wall time.
func TestRetryWithBackoff(t *testing.T) { synctest.Test(t, testRetryWithBackoff) }

func testRetryWithBackoff(t *testing.T) {
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
		return time.Duration(n) * time.Minute
	}
	r := projection.NewRunner(st)
	add(t, r, p, projection.AsAsync(), projection.WithRetry(3, backoff))
	began := time.Now()
	start(t, r)
	require.NoError(t, r.WaitFor(context.Background(), "flaky", 3)) // no deadline: fake time runs on
	assert.Equal(t, 3*time.Minute, time.Since(began), "the pauses of 1 and 2 minutes, and nothing else")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []int{1, 2}, pauses, "backoff called with %v, want [1 2]", pauses)
	assert.Equal(t, []event.Position{1, 2, 3}, applied, "applied %v", applied)
	s := statusOf(t, r, "flaky")
	assert.Nil(t, s.Err, "status %+v", s)
	assert.EqualValues(t, projection.Running, s.State, "status %+v", s)
	assert.EqualValues(t, 10*time.Millisecond, projection.DefaultBackoff(1), "DefaultBackoff does not double from 10ms to 1s")
	assert.EqualValues(t, 20*time.Millisecond, projection.DefaultBackoff(2), "DefaultBackoff does not double from 10ms to 1s")
	assert.EqualValues(t, time.Second, projection.DefaultBackoff(30), "DefaultBackoff does not double from 10ms to 1s")
}
