package projection_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
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
		if err != nil {
			t.Fatal(err)
		}
		// No WaitFor: an inline view is current when Dispatch returns.
		if got := v.Total(); got != sumTo(i) {
			t.Fatalf("right after dispatch %d total = %d, want %d", i, got, sumTo(i))
		}
		if s := statusOf(t, r, "sum"); s.Checkpoint != res.Position || s.Mode != projection.Inline {
			t.Fatalf("checkpoint %v after dispatch at %v", s.Checkpoint, res.Position)
		}
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
					t.Error(err)
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
	if got := v.Count(); got != 420 {
		t.Errorf("count = %d, want 420", got)
	}
	v.checkApplied(t)
}

func TestRestartYieldsSameView(t *testing.T) {
	const n, more = 3000, 500

	t.Run("Async", func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, n, 50)
		cps := &projection.MemoryCheckpoints{}
		v := newSumView("sum")
		v.gate, v.gateAt = make(chan struct{}), 1200 // hold the runner mid-stream

		r1 := projection.NewRunner(st, projection.WithCheckpoints(cps), projection.WithBatchSize(16))
		add(t, r1, v, projection.AsAsync())
		start(t, r1)
		eventually(t, "the event in hand", func() bool { return v.Count() == 1199 })
		closed := make(chan struct{})
		go func() { r1.Close(); close(closed) }()
		select {
		case <-closed:
			t.Fatal("Close returned with an event in hand")
		case <-time.After(20 * time.Millisecond):
		}
		close(v.gate) // the handler finishes; Close saves the checkpoint
		<-closed
		cp, err := cps.Load(context.Background(), "sum")
		if err != nil || cp.Position != 1200 || v.Count() != 1200 {
			t.Fatalf("after Close: checkpoint %+v (%v), view count %d; want 1200 both", cp, err, v.Count())
		}

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

		if !maps.Equal(v.Parts(), ref.Parts()) || v.Total() != ref.Total() {
			t.Errorf("restarted view %v, uninterrupted %v", v.Parts(), ref.Parts())
		}
		if v.Count() != n+more {
			t.Errorf("count = %d, want %d", v.Count(), n+more)
		}
		v.checkApplied(t) // no position applied twice
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
			if _, err := command.Dispatch(ctx, bus, addCmd{Stream: streamOf(i), N: i}); err != nil {
				t.Fatal(err)
			}
		}
		r1.Close()
		appendN(t, st, 20, 3) // committed while no runner is up

		r2 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r2, v)
		start(t, r2) // catches up inline
		if v.Count() != 50 || !maps.Equal(v.Parts(), partsTo(50, 1)) {
			t.Errorf("after restart count %d parts %v", v.Count(), v.Parts())
		}
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
	if err := cps.Save(ctx, "v", projection.Checkpoint{Position: 5}); err != nil {
		t.Fatal(err)
	}
	v := newSumView("v") // its (durable) state already includes 1..5
	r := projection.NewRunner(st, projection.WithCheckpoints(cps))
	add(t, r, v)
	started := make(chan error, 1)
	go func() { started <- r.Start(ctx) }()
	defer r.Close()
	<-cps.entered
	// A dispatch commits while Start is loading checkpoints.
	if err := r.Sync(ctx, 5); !hasText(err, "not started") {
		t.Errorf("Sync during Start = %v, want ErrNotStarted", err)
	}
	close(cps.release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if v.Count() != 0 {
		t.Fatalf("events at or below the checkpoint were applied again: %v", v.Applied())
	}
	if err := r.Sync(ctx, appendN(t, st, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if a := v.Applied(); !slices.Equal(a, []event.Position{6}) {
		t.Errorf("applied %v, want [6]", a)
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	r := projection.NewRunner(st)
	add(t, r, newSumView("v"))
	if err := r.Add(newSumView("v")); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := r.Sync(ctx, 1); !hasText(err, "not started") {
		t.Errorf("Sync before Start = %v", err)
	}
	if err := r.Rebuild(ctx, "v"); !hasText(err, "not started") {
		t.Errorf("Rebuild before Start = %v", err)
	}
	if s := statusOf(t, r, "v"); s.State != projection.Idle {
		t.Errorf("state before Start %v", s.State)
	}
	start(t, r)
	if err := r.Start(ctx); err == nil {
		t.Error("second Start accepted")
	}
	if err := r.Add(newSumView("w")); err == nil {
		t.Error("Add after Start accepted")
	}
	for what, err := range map[string]error{
		"StatusOf": func() error { _, err := r.StatusOf(ctx, "x"); return err }(),
		"Parked":   func() error { _, err := r.Parked("x"); return err }(),
		"Replay":   r.Replay(ctx, "x", 1),
		"Resume":   r.Resume(ctx, "x"),
		"Rebuild":  r.Rebuild(ctx, "x"),
	} {
		if !hasText(err, "unknown projector") {
			t.Errorf("%s of an unknown projector = %v", what, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	for what, err := range map[string]error{
		"Sync":    r.Sync(ctx, 1),
		"Rebuild": r.Rebuild(ctx, "v"),
		"Resume":  r.Resume(ctx, "v"),
		"Start":   r.Start(ctx),
		"WaitFor": r.WaitFor(ctx, "v", 1),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", what, err)
		}
	}
	for _, x := range []interface{ String() string }{projection.Inline, projection.Async, projection.Stop, projection.Park, projection.Running, projection.State(42)} {
		if x.String() == "" {
			t.Errorf("%#v has no name", x)
		}
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
	if !hasText(err, "not started") || errors.Is(err, command.ErrAfterCommit) {
		t.Errorf("Dispatch before Start = %v, want ErrNotStarted before commit", err)
	}
	if head, _ := st.Head(context.Background()); head != 0 {
		t.Errorf("Dispatch before Start committed: head %v", head)
	}
}
