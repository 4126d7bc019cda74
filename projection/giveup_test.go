package projection_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
)

// gatedView is an inline projector whose first record blocks until the
// gate opens, like a slow view update holding the projector while other
// dispatches queue behind it.
type gatedView struct {
	gate    chan struct{}
	mu      sync.Mutex
	applied []event.Position
}

func (*gatedView) Name() string { return "gated" }

func (v *gatedView) Handle(ctx context.Context, rec event.Record) error {
	v.mu.Lock()
	first := len(v.applied) == 0
	v.mu.Unlock()
	if first {
		<-v.gate
	}
	v.mu.Lock()
	v.applied = append(v.applied, rec.Position)
	v.mu.Unlock()
	return nil
}

func (v *gatedView) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.applied)
}

// TestInlineCatchesUpAfterSyncGivesUp: a Sync whose context ends while
// another delivery holds the inline projector returns the context's error,
// but the event it was syncing is committed. The projector must still
// reach it on its own, without waiting for the next Sync or WaitFor, or
// the view lags a committed write for as long as nobody writes again.
func TestInlineCatchesUpAfterSyncGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		r := projection.NewRunner(st)
		v := &gatedView{gate: make(chan struct{})}
		add(t, r, v)
		start(t, r)

		p1 := appendN(t, st, 1, 1)
		first := make(chan error, 1)
		go func() { first <- r.Sync(context.Background(), p1) }()
		synctest.Wait() // the first Sync is inside Handle, holding the projector

		p2 := appendN(t, st, 1, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		err := r.Sync(ctx, p2)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "the second Sync gives up")

		close(v.gate)
		require.NoError(t, <-first)
		settled(t, "caught up with the committed event the second Sync gave up on", func() bool {
			return v.count() == 2 && statusOf(t, r, "gated").Checkpoint == p2
		})
	})
}

// TestInlineCatchesUpAfterFrozenLog: the same when the Sync gave up inside
// the delivery, on a log that did not answer before the caller's deadline.
func TestInlineCatchesUpAfterFrozenLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &frozenLog{Memory: newMemory(t)}
		r := projection.NewRunner(log)
		v := &gatedView{gate: make(chan struct{})}
		close(v.gate)
		add(t, r, v)
		start(t, r)

		log.freeze(true)
		p1 := appendN(t, log.Memory, 3, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		err := r.Sync(ctx, p1)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "Sync gives up on the frozen log")
		require.Zero(t, v.count())

		log.freeze(false)
		settled(t, "caught up once the log answered again", func() bool {
			return v.count() == 3 && statusOf(t, r, "gated").Checkpoint == p1
		})
	})
}
