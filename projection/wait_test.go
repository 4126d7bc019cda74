package projection_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

func TestWaitFor(t *testing.T) {
	ctx := context.Background()
	// In a synctest bubble the clock moves only when every goroutine is
	// blocked: a WaitFor that polled, or a follower that woke on a timer,
	// would show up as time passing between the commit and the return.
	t.Run("WakesOnCommitNotByPolling", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newMemory(t)
			r := projection.NewRunner(st)
			add(t, r, newSumView("v"), projection.AsAsync())
			start(t, r)
			for i := 1; i <= 5; i++ {
				got := make(chan error, 1)
				go func() { got <- r.WaitFor(ctx, "v", event.Position(i)) }()
				synctest.Wait() // WaitFor and the follower are blocked
				require.Empty(t, got, "WaitFor returned before the commit")
				committed := time.Now()
				appendN(t, st, 1, 1)
				require.NoError(t, <-got)
				assert.Zero(t, time.Since(committed), "WaitFor returned after a timer, not on the commit")
			}
			// Already reached: nil even with a done context.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			assert.NoError(t, r.WaitFor(cctx, "v", 5), "WaitFor of a reached position")
		})
	})

	t.Run("Stopped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newMemory(t)
			appendN(t, st, 3, 3)
			r := projection.NewRunner(st)
			v := newSumView("bad")
			v.failAt.Store(2)
			add(t, r, v, projection.AsAsync(), fast(1))
			start(t, r)
			settled(t, "stopped", func() bool { return statusOf(t, r, "bad").State == projection.Stopped })
			wctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
			defer cancel()
			err := r.WaitFor(wctx, "bad", 3)
			var nr *projection.NotReachedError
			require.ErrorIs(t, err, projection.ErrNotReached)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorAs(t, err, &nr)
			assert.Equal(t, projection.Stopped, nr.State)
			assert.ErrorIs(t, nr.Cause, projection.ErrStopped)
			assert.Equal(t, event.Position(1), nr.Reached)
			assert.Equal(t, event.Position(3), nr.Want)
			assert.Equal(t, "bad", nr.Projector)
			assert.ErrorIs(t, err, projection.ErrStopped, "the error unwraps to ErrStopped")
		})
	})

	t.Run("AllProjectors", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
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
			synctest.Wait()
			require.Empty(t, all, "WaitFor(\"\") returned while a projector lags")
			close(slow.gate)
			require.NoError(t, <-all)
			for _, v := range []*sumView{fastV, slow, inl} {
				assert.Equal(t, sumTo(3), v.Total(), v.name)
			}
		})
	})

	t.Run("UnknownAndClosed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newMemory(t)
			r := projection.NewRunner(st)
			add(t, r, newSumView("v"), projection.AsAsync())
			start(t, r)
			require.ErrorContains(t, r.WaitFor(ctx, "nope", 1), "unknown projector")
			waiting := make(chan error, 1)
			go func() { waiting <- r.WaitFor(ctx, "v", 1) }() // no deadline
			synctest.Wait()                                   // it is blocked
			require.NoError(t, r.Close())
			err := <-waiting
			var nr *projection.NotReachedError
			require.ErrorIs(t, err, store.ErrClosed)
			require.ErrorAs(t, err, &nr)
			assert.Equal(t, projection.Closed, nr.State)
		})
	})
}
