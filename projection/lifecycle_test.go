package projection_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type addCmd struct {
	Stream string
	N      int
}

func newBus(st store.Store, r *projection.Runner) *command.Bus {
	bus := command.New(st, command.WithSyncer(r))
	command.Register(bus, func(_ context.Context, tx store.Tx, c addCmd) error {
		tx.Record(c.Stream, added{N: c.N})
		return nil
	})
	return bus
}

func TestInlineReadYourWritesThroughCommandBus(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	r := projection.NewRunner(st)
	v := newSumView("sum")
	add(t, r, v)
	start(t, r)
	bus := newBus(st, r)

	for i := 1; i <= 20; i++ {
		res, err := command.Dispatch(ctx, bus, addCmd{Stream: "a", N: i})
		require.NoError(t, err)
		// No WaitFor: an inline view is current when Dispatch returns.
		got := v.Total()
		require.EqualValues(t, sumTo(i), got, "right after dispatch %d total = %d, want %d", i, got, sumTo(i))
		s := statusOf(t, r, "sum")
		require.EqualValues(t, res.Position, s.Checkpoint, "checkpoint %v after dispatch at %v", s.Checkpoint, res.Position)
		require.EqualValues(t, projection.Inline, s.Mode, "checkpoint %v after dispatch at %v", s.Checkpoint, res.Position)
	}

	// Concurrent dispatches: each sees its own write; the projector sees
	// every position once, in order.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			stream := string(rune('b' + w))
			for i := 1; i <= 50; i++ {
				res, err := command.Dispatch(ctx, bus, addCmd{Stream: stream, N: 1})
				if err != nil {
					assert.NoError(t, err)
					return
				}
				if got := v.Parts()[stream]; got < i {
					t.Errorf("%s: after my dispatch %d at %v the view shows %d", stream, i, res.Position, got)
					return
				}
			}
		})
	}
	wg.Wait()
	got := v.Count()
	assert.EqualValues(t, 420, got, "count = %d, want 420", got)
	v.checkApplied(t)
}

func TestRestartYieldsSameView(t *testing.T) {
	const n, more = 3000, 500

	t.Run("Async", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newMemory(t)
			appendN(t, st, n, 50)
			cps := &projection.MemoryCheckpoints{}
			v := newSumView("sum")
			v.gate, v.gateAt = make(chan struct{}), 1200 // hold the runner mid-stream

			r1 := projection.NewRunner(st, projection.WithCheckpoints(cps), projection.WithBatchSize(16))
			add(t, r1, v, projection.AsAsync())
			start(t, r1)
			settled(t, "the event in hand", func() bool { return v.Count() == 1199 })
			closed := make(chan struct{}, 1)
			go func() { r1.Close(); closed <- struct{}{} }()
			synctest.Wait() // Close is blocked on the handler
			require.Empty(t, closed, "Close returned with an event in hand")
			close(v.gate) // the handler finishes; Close saves the checkpoint
			<-closed
			cp, err := cps.Load(context.Background(), "sum")
			require.NoError(t, err, "after Close: checkpoint %+v (%v), view count %d; want 1200 both", cp, err, v.Count())
			require.EqualValues(t, 1200, cp.Position, "after Close: checkpoint %+v (%v), view count %d; want 1200 both", cp, err, v.Count())
			require.EqualValues(t, 1200, v.Count(), "after Close: checkpoint %+v (%v), view count %d; want 1200 both", cp, err, v.Count())

			v.gate = nil
			r2 := projection.NewRunner(st, projection.WithCheckpoints(cps), projection.WithBatchSize(16))
			add(t, r2, v, projection.AsAsync())
			start(t, r2)
			head := appendN(t, st, more, 7)
			waitFor(t, r2, "sum", head)

			ref := newSumView("ref") // uninterrupted
			r3 := projection.NewRunner(st)
			add(t, r3, ref, projection.AsAsync())
			start(t, r3)
			waitFor(t, r3, "ref", head)

			assert.Equal(t, ref.Parts(), v.Parts(), "restarted view %v, uninterrupted %v", v.Parts(), ref.Parts())
			assert.EqualValues(t, ref.Total(), v.Total(), "restarted view %v, uninterrupted %v", v.Parts(), ref.Parts())
			assert.EqualValues(t, n+more, v.Count(), "count = %d, want %d", v.Count(), n+more)
			v.checkApplied(t) // no position applied twice
		})
	})

	t.Run("Inline", func(t *testing.T) {
		ctx := context.Background()
		st := newMemory(t)
		cps := &projection.MemoryCheckpoints{}
		v := newSumView("sum")
		r1 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r1, v)
		start(t, r1)
		bus := newBus(st, r1)
		for i := 1; i <= 30; i++ {
			_, err := command.Dispatch(ctx, bus, addCmd{Stream: streamOf(i), N: i})
			require.NoError(t, err, err)
		}
		r1.Close()
		appendN(t, st, 20, 3) // committed while no runner is up

		r2 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r2, v)
		start(t, r2) // catches up inline
		assert.EqualValues(t, 50, v.Count(), "after restart count %d parts %v", v.Count(), v.Parts())
		assert.Equal(t, partsTo(50, 1), v.Parts(), "after restart count %d parts %v", v.Count(), v.Parts())
		v.checkApplied(t)
	})
}

// blockingCheckpoints holds Load until released.
type blockingCheckpoints struct {
	projection.MemoryCheckpoints
	entered, release chan struct{}
}

func (b *blockingCheckpoints) Load(ctx context.Context, name string) (projection.Checkpoint, error) {
	close(b.entered)
	<-b.release
	return b.MemoryCheckpoints.Load(ctx, name)
}

func TestSyncDuringStartWaitsForCheckpoints(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 5, 5)
	cps := &blockingCheckpoints{entered: make(chan struct{}), release: make(chan struct{})}
	require.NoError(t, cps.Save(ctx, "v", projection.Checkpoint{Position: 5}))
	v := newSumView("v") // its (durable) state already includes 1..5
	r := projection.NewRunner(st, projection.WithCheckpoints(cps))
	add(t, r, v)
	started := make(chan error, 1)
	go func() { started <- r.Start(ctx) }()
	defer r.Close()
	<-cps.entered
	// A dispatch commits while Start is loading checkpoints.
	err := r.Sync(ctx, 5)
	assert.ErrorContains(t, err, "not started", "Sync during Start = %v, want ErrNotStarted", err)
	close(cps.release)
	require.NoError(t, <-started)
	require.EqualValues(t, 0, v.Count(), "events at or below the checkpoint were applied again: %v", v.Applied())
	require.NoError(t, r.Sync(ctx, appendN(t, st, 1, 1)))
	a := v.Applied()
	assert.Equal(t, []event.Position{6}, a, "applied %v, want [6]", a)
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	r := projection.NewRunner(st)
	add(t, r, newSumView("v"))
	err := r.Add(newSumView("v"))
	assert.Error(t, err, "duplicate name accepted")
	err = r.Sync(ctx, 1)
	assert.ErrorContains(t, err, "not started", "Sync before Start = %v", err)
	err = r.Rebuild(ctx, "v")
	assert.ErrorContains(t, err, "not started", "Rebuild before Start = %v", err)
	s := statusOf(t, r, "v")
	assert.EqualValues(t, projection.Idle, s.State, "state before Start %v", s.State)
	start(t, r)
	err = r.Start(ctx)
	assert.Error(t, err, "second Start accepted")
	err = r.Add(newSumView("w"))
	assert.Error(t, err, "Add after Start accepted")
	for what, err := range map[string]error{
		"StatusOf": func() error { _, err := r.StatusOf(ctx, "x"); return err }(),
		"Parked":   func() error { _, err := r.Parked("x"); return err }(),
		"Replay":   r.Replay(ctx, "x", 1),
		"Resume":   r.Resume(ctx, "x"),
		"Rebuild":  r.Rebuild(ctx, "x"),
	} {
		assert.ErrorContains(t, err, "unknown projector", "%s of an unknown projector = %v", what, err)
	}
	require.NoError(t, r.Close())
	assert.NoError(t, r.Close())
	for what, err := range map[string]error{
		"Sync":    r.Sync(ctx, 1),
		"Rebuild": r.Rebuild(ctx, "v"),
		"Resume":  r.Resume(ctx, "v"),
		"Start":   r.Start(ctx),
		"WaitFor": r.WaitFor(ctx, "v", 1),
	} {
		assert.ErrorIs(t, err, store.ErrClosed, "%s after Close = %v, want ErrClosed", what, err)
	}
	for _, x := range []interface{ String() string }{projection.Inline, projection.Async, projection.Stop, projection.Park, projection.Running, projection.State(42)} {
		assert.NotEmpty(t, x.String(), "%#v has no name", x)
	}
}

// TestDispatchBeforeStartDoesNotCommit: a wiring mistake is refused before
// the command commits.
func TestDispatchBeforeStartDoesNotCommit(t *testing.T) {
	st := newMemory(t)
	r := projection.NewRunner(st)
	add(t, r, newSumView("inline"))
	bus := command.New(st, command.WithSyncer(r))
	command.Register(bus, func(ctx context.Context, tx store.Tx, c added) error {
		tx.Record("s", c)
		return nil
	})
	_, err := bus.Dispatch(context.Background(), added{N: 1})
	assert.ErrorContains(t, err, "not started", "Dispatch before Start = %v, want ErrNotStarted before commit", err)
	assert.NotErrorIs(t, err, command.ErrAfterCommit, "Dispatch before Start = %v, want ErrNotStarted before commit", err)
	head, _ := st.Head(context.Background())
	assert.EqualValues(t, 0, head, "Dispatch before Start committed: head %v", head)
}
