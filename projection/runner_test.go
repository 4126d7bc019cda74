package projection_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/projection/projectiontest"
	"github.com/cqrskit/cqrs/store"
)

func TestMemoryCheckpoints(t *testing.T) {
	projectiontest.TestCheckpointStore(t, func(*testing.T) projection.CheckpointStore {
		return &projection.MemoryCheckpoints{}
	})
}

func TestAsyncCatchesUpThenFollows(t *testing.T) {
	st := newMemory(t)
	appendN(t, st, 1000, 100)
	r := projection.NewRunner(st, projection.WithBatchSize(64))
	v := newSumView("sum")
	add(t, r, v, projection.AsAsync())
	start(t, r)

	waitFor(t, r, "sum", 1000)
	if got := v.Total(); got != sumTo(1000) {
		t.Fatalf("after catch-up total = %d, want %d", got, sumTo(1000))
	}
	// Following: every commit is picked up without polling.
	for range 20 {
		waitFor(t, r, "sum", appendN(t, st, 1, 1))
	}
	// A burst from several writers.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				if _, err := st.Update(context.Background(), func(tx store.Tx) error {
					tx.Record("burst", added{N: 1})
					return nil
				}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, r, "sum", 1120)
	if got, want := v.Total(), sumTo(1020)+100; got != want {
		t.Errorf("total = %d, want %d", got, want)
	}
	if got := v.Count(); got != 1120 {
		t.Errorf("count = %d, want 1120", got)
	}
	v.checkApplied(t)
	s := statusOf(t, r, "sum")
	if s.State != projection.Running || s.Checkpoint != 1120 || s.Head != 1120 || s.Behind != 0 || s.TimeBehind != 0 || s.Err != nil || s.Mode != projection.Async {
		t.Errorf("status = %+v", s)
	}
}

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

func TestParkPolicy(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 10, 4)
	r := projection.NewRunner(st)
	v := newSumView("park")
	v.failAt.Store(5)
	add(t, r, v, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(2))
	start(t, r)

	waitFor(t, r, "park", 10)
	if got, want := v.Total(), sumTo(10)-5; got != want || v.Count() != 9 {
		t.Errorf("total %d count %d, want %d and 9: every other event applied", got, v.Count(), want)
	}
	parked, err := r.Parked("park")
	if err != nil || len(parked) != 1 {
		t.Fatalf("Parked = %v, %v; want one", parked, err)
	}
	if p := parked[0]; p.Record.Position != 5 || !errors.Is(p.Err, errFault) || p.Attempts != 2 || p.At.IsZero() {
		t.Errorf("parked = %+v", p)
	}
	if s := statusOf(t, r, "park"); s.Parked != 1 || s.State != projection.Running || s.Err != nil || s.Checkpoint != 10 || s.Policy != projection.Park {
		t.Errorf("status = %+v", s)
	}

	// Replay before the fix: still parked, with the new attempt counted.
	if err := r.Replay(ctx, "park", 5); !errors.Is(err, errFault) {
		t.Errorf("Replay before the fix = %v, want errFault", err)
	}
	if parked, _ := r.Parked("park"); len(parked) != 1 || parked[0].Attempts != 3 {
		t.Errorf("after a failed Replay: %+v", parked)
	}
	if err := r.Replay(ctx, "park", 6); !errors.Is(err, projection.ErrNotParked) {
		t.Errorf("Replay of an unparked position = %v, want ErrNotParked", err)
	}

	v.failAt.Store(0)
	if err := r.Replay(ctx, "park", 5); err != nil {
		t.Fatalf("Replay after the fix: %v", err)
	}
	if parked, _ := r.Parked("park"); len(parked) != 0 {
		t.Errorf("still parked after Replay: %+v", parked)
	}
	if v.Total() != sumTo(10) || v.Count() != 10 {
		t.Errorf("after Replay total %d count %d", v.Total(), v.Count())
	}
	if !maps.Equal(v.Parts(), partsTo(10, 1)) {
		t.Errorf("parts %v", v.Parts())
	}
	applied := v.Applied()
	slices.Sort(applied)
	if len(slices.Compact(applied)) != 10 {
		t.Errorf("applied %v: want each of 1..10 once", v.Applied())
	}
	if statusOf(t, r, "park").Parked != 0 {
		t.Error("Status still counts a parked event")
	}
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
		var pe *projection.PanicError
		if !errors.Is(s.Err, projection.ErrStopped) || !errors.Is(s.Err, projection.ErrPanic) || !errors.As(s.Err, &pe) || len(pe.Stack) == 0 {
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
		if len(parked) != 1 || !errors.Is(parked[0].Err, projection.ErrPanic) || !errors.Is(parked[0].Err, errFault) {
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

func (v *sumView) snapshot() (total, sumParts, count int) {
	s := v.cur.Load()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.parts {
		sumParts += p
	}
	return s.total, sumParts, s.count
}

func TestRebuildUnderConcurrentReadsAndWrites(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 3000, 100)
	r := projection.NewRunner(st, projection.WithBatchSize(32))
	v, ref := newSumView("live"), newSumView("ref")
	add(t, r, v, projection.AsAsync())
	add(t, r, ref, projection.AsAsync())
	start(t, r)

	stop := make(chan struct{})
	var wg, running sync.WaitGroup
	running.Add(6)     // every writer and reader has done one round
	for w := range 2 { // writers
		wg.Go(func() {
			first := true
			defer func() {
				if first {
					running.Done()
				}
			}()
			for i := range 3000 { // bounded, to keep rebuilds quick
				select {
				case <-stop:
					return
				default:
				}
				if _, err := st.Update(ctx, func(tx store.Tx) error {
					tx.Record(streamOf(i+w), added{N: w + 1})
					return nil
				}); err != nil {
					t.Error(err)
					return
				}
				if first {
					running.Done()
					first = false
				}
			}
		})
	}
	var reads atomic.Int64
	for range 4 { // readers of the live view
		wg.Go(func() {
			last, first := 0, true
			defer func() {
				if first {
					running.Done()
				}
			}()
			for {
				select {
				case <-stop:
					return
				default:
				}
				total, parts, count := v.snapshot()
				if total != parts {
					t.Errorf("half-built view: total %d, parts sum to %d", total, parts)
					return
				}
				if count < last {
					t.Errorf("view went back from %d to %d events", last, count)
					return
				}
				last = count
				if reads.Add(1); first {
					running.Done()
					first = false
				}
			}
		})
	}
	running.Wait()
	for range 3 {
		if err := r.Rebuild(ctx, "live"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	head, _ := st.Head(ctx)
	waitFor(t, r, "", head)
	if got := v.shadows.Load(); got != 3 {
		t.Errorf("%d shadows, want 3", got)
	}
	if !maps.Equal(v.Parts(), ref.Parts()) || v.Total() != ref.Total() || v.Count() != int(head) {
		t.Errorf("rebuilt view (%d events) differs from the incremental one (%d)", v.Count(), ref.Count())
	}
	v.checkApplied(t)
	if reads.Load() == 0 {
		t.Error("readers never ran")
	}
	t.Logf("%d events, %d reads during 3 rebuilds", head, reads.Load())
}

// gatedShadow is a sumView whose shadow blocks at one position until
// released, to observe a rebuild in progress.
type gatedShadow struct {
	*sumView
	at      event.Position
	entered chan struct{}
	release chan struct{}
}

func (g *gatedShadow) Shadow(ctx context.Context) (event.Handler, func(), error) {
	h, swap, err := g.sumView.Shadow(ctx)
	return event.HandlerFunc(func(ctx context.Context, rec event.Record) error {
		if rec.Position == g.at {
			close(g.entered)
			<-g.release
		}
		return h.Handle(ctx, rec)
	}), swap, err
}

func TestRebuildKeepsServingAndFollowing(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 100, 10)
	r := projection.NewRunner(st)
	g := &gatedShadow{sumView: newSumView("v"), at: 50, entered: make(chan struct{}), release: make(chan struct{})}
	add(t, r, g, projection.AsAsync())
	start(t, r)
	waitFor(t, r, "v", 100)

	done := make(chan error, 1)
	go func() { done <- r.Rebuild(ctx, "v") }()
	<-g.entered
	if s := statusOf(t, r, "v"); s.State != projection.Rebuilding {
		t.Errorf("state during rebuild = %v", s.State)
	}
	if err := r.Rebuild(ctx, "v"); !errors.Is(err, projection.ErrRebuilding) {
		t.Errorf("second Rebuild = %v, want ErrRebuilding", err)
	}
	// The live view keeps serving and following while the shadow is built.
	waitFor(t, r, "v", appendN(t, st, 10, 1))
	if g.Total() != sumTo(110) {
		t.Errorf("live total during rebuild = %d, want %d", g.Total(), sumTo(110))
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g.Total() != sumTo(110) || g.shadows.Load() != 1 {
		t.Errorf("after rebuild total = %d", g.Total())
	}
	g.checkApplied(t)
	if s := statusOf(t, r, "v"); s.State != projection.Running || s.Checkpoint != 110 {
		t.Errorf("status after rebuild %+v", s)
	}
}

func TestRebuildClearsStopAndFollowingResumes(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 10, 10)
	r := projection.NewRunner(st)
	v := newSumView("v")
	v.failAt.Store(4)
	add(t, r, v, projection.AsAsync(), fast(2))
	start(t, r)
	eventually(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })

	// A rebuild while still broken retries like live delivery, fails, and
	// leaves the live view alone.
	if err := r.Rebuild(ctx, "v"); !errors.Is(err, projection.ErrStopped) || !errors.Is(err, errFault) {
		t.Errorf("Rebuild of a broken projector = %v, want ErrStopped", err)
	}
	if got := v.tries.Load(); got != 4 {
		t.Errorf("%d tries, want 2 live and 2 in the rebuild", got)
	}
	if s := statusOf(t, r, "v"); s.State != projection.Stopped || v.Count() != 3 {
		t.Errorf("after a failed rebuild: %+v, count %d", s, v.Count())
	}

	v.failAt.Store(0)
	if err := r.Rebuild(ctx, "v"); err != nil { // instead of Resume
		t.Fatal(err)
	}
	if s := statusOf(t, r, "v"); s.Err != nil || s.Checkpoint != 10 {
		t.Errorf("after rebuild %+v", s)
	}
	// The async goroutine must follow new commits again.
	waitFor(t, r, "v", appendN(t, st, 5, 1))
	if v.Total() != sumTo(15) {
		t.Errorf("total %d, want %d", v.Total(), sumTo(15))
	}
}

func TestVersionChangeRebuildsAtStart(t *testing.T) {
	ctx := context.Background()
	t.Run("Rebuilder", func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 50, 10)
		cps := &projection.MemoryCheckpoints{}
		v := newSumView("sum")
		r1 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r1, versioned{v, 1}, projection.AsAsync())
		start(t, r1)
		waitFor(t, r1, "sum", 50)
		r1.Close()
		if cp, _ := cps.Load(ctx, "sum"); cp != (projection.Checkpoint{Position: 50, Version: 1}) {
			t.Fatalf("checkpoint %+v", cp)
		}

		v.factor = 2 // new logic, new version
		r2 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r2, versioned{v, 2}, projection.AsAsync())
		start(t, r2) // rebuilds before returning
		if v.shadows.Load() != 1 || !maps.Equal(v.Parts(), partsTo(50, 2)) {
			t.Fatalf("after Start: %d shadows, parts %v", v.shadows.Load(), v.Parts())
		}
		if cp, _ := cps.Load(ctx, "sum"); cp != (projection.Checkpoint{Position: 50, Version: 2}) {
			t.Errorf("checkpoint after rebuild %+v", cp)
		}
		if s := statusOf(t, r2, "sum"); s.Version != 2 {
			t.Errorf("status version %d", s.Version)
		}
		waitFor(t, r2, "sum", appendN(t, st, 10, 10))
		if v.Total() != 2*sumTo(60) {
			t.Errorf("total %d, want %d", v.Total(), 2*sumTo(60))
		}
		r2.Close()

		r3 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r3, versioned{v, 2}, projection.AsAsync())
		start(t, r3)
		if v.shadows.Load() != 1 {
			t.Error("an unchanged version was rebuilt")
		}
	})
	t.Run("NotRebuildable", func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 5, 5)
		cps := &projection.MemoryCheckpoints{}
		r1 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r1, &plainVersioned{v: 1})
		start(t, r1)
		if err := r1.Rebuild(ctx, "plain"); !errors.Is(err, projection.ErrNotRebuildable) {
			t.Errorf("Rebuild = %v, want ErrNotRebuildable", err)
		}
		r1.Close()

		r2 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r2, &plainVersioned{v: 2})
		err := r2.Start(ctx)
		defer r2.Close()
		if !errors.Is(err, projection.ErrNotRebuildable) {
			t.Errorf("Start = %v, want ErrNotRebuildable", err)
		}
	})
}

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
		if err := r.WaitFor(ctx, "nope", 1); !errors.Is(err, projection.ErrUnknownProjector) {
			t.Errorf("unknown = %v", err)
		}
		waiting := make(chan error, 1)
		go func() { waiting <- r.WaitFor(ctx, "v", 1) }() // no deadline
		time.Sleep(5 * time.Millisecond)
		r.Close()
		err := <-waiting
		var nr *projection.NotReachedError
		if !errors.Is(err, projection.ErrClosed) || !errors.As(err, &nr) || nr.State != projection.Closed {
			t.Errorf("WaitFor across Close = %v, want ErrNotReached with ErrClosed", err)
		}
	})
}

// gapLog is a contiguous-claiming log with a hole at position 3.
type gapLog struct {
	recs       []event.Record
	contiguous bool
}

var (
	_ store.Log        = (*gapLog)(nil)
	_ store.Contiguous = (*gapLog)(nil)
)

func newGapLog(contiguous bool) *gapLog {
	l := &gapLog{contiguous: contiguous}
	for _, p := range []event.Position{1, 2, 4, 5} {
		l.recs = append(l.recs, event.Record{Type: added{}.EventType(), Stream: "s", Position: p, Version: uint64(p), Time: time.Unix(int64(p), 0), Data: added{N: int(p)}})
	}
	return l
}

func (l *gapLog) Read(ctx context.Context, after event.Position, dst []event.Record) ([]event.Record, error) {
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	n := max(cap(dst)-len(dst), 1)
	for _, rec := range l.recs {
		if rec.Position > after && n > 0 {
			dst = append(dst, rec)
			n--
		}
	}
	return dst, nil
}

func (l *gapLog) Head(context.Context) (event.Position, error) {
	return l.recs[len(l.recs)-1].Position, nil
}

func (l *gapLog) Wait(ctx context.Context, after event.Position) error {
	if h, _ := l.Head(ctx); h > after {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (l *gapLog) Contiguous() bool { return l.contiguous }

func TestGapIsReportedNotJumped(t *testing.T) {
	ctx := context.Background()
	checkGap := func(t *testing.T, err error) {
		t.Helper()
		var ge *projection.GapError
		var se *projection.StoppedError
		if !errors.Is(err, projection.ErrGap) || !errors.As(err, &ge) || !errors.As(err, &se) {
			t.Fatalf("err = %v, want a *StoppedError wrapping a *GapError", err)
		}
		if ge.Expected != 3 || ge.Got != 4 || se.Position != 3 {
			t.Errorf("gap %+v at %v, want expected 3 got 4", ge, se.Position)
		}
	}
	t.Run("Async", func(t *testing.T) {
		r := projection.NewRunner(newGapLog(true))
		v := newSumView("v")
		add(t, r, v, projection.AsAsync())
		start(t, r)
		eventually(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
		s := statusOf(t, r, "v")
		checkGap(t, s.Err)
		if s.Checkpoint != 2 || v.Count() != 2 {
			t.Errorf("checkpoint %v count %d, want 2, 2", s.Checkpoint, v.Count())
		}
		// Resume does not jump it either.
		if err := r.Resume(ctx, "v"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "stopped again", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
		if v.Count() != 2 {
			t.Errorf("count %d after Resume", v.Count())
		}
		checkGap(t, r.Rebuild(ctx, "v"))
	})
	t.Run("Inline", func(t *testing.T) {
		r := projection.NewRunner(newGapLog(true))
		add(t, r, newSumView("v"))
		err := r.Start(ctx)
		defer r.Close()
		checkGap(t, err)
	})
	t.Run("NotContiguous", func(t *testing.T) {
		r := projection.NewRunner(newGapLog(false))
		v := newSumView("v")
		add(t, r, v, projection.AsAsync())
		start(t, r)
		waitFor(t, r, "v", 5)
		if v.Count() != 4 {
			t.Errorf("count %d, want 4", v.Count())
		}
	})
}

func TestStatusLag(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var tick atomic.Int64
	st := newMemory(t, store.WithClock(func() time.Time {
		return t0.Add(time.Duration(tick.Add(1)) * time.Minute) // event k commits at t0+k min
	}))
	appendN(t, st, 10, 1)
	cps := &projection.MemoryCheckpoints{}

	run := func() (*projection.Runner, *sumView) {
		r := projection.NewRunner(st, projection.WithCheckpoints(cps))
		v := newSumView("v")
		v.failAt.Store(6)
		add(t, r, v, projection.AsAsync(), fast(1))
		add(t, r, newSumView("ok"), projection.AsAsync())
		return r, v
	}
	r, _ := run()
	s := statusOf(t, r, "v")
	if s.State != projection.Idle || s.Checkpoint != 0 || s.Behind != 10 || s.TimeBehind != 9*time.Minute {
		t.Errorf("before Start: %+v", s)
	}
	start(t, r)
	eventually(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
	waitFor(t, r, "ok", 10)
	check := func(when string) {
		t.Helper()
		all, err := r.Status(ctx)
		if err != nil || len(all) != 2 {
			t.Fatalf("Status: %v, %v", all, err)
		}
		s := all[0]
		if s.Name != "v" || s.Checkpoint != 5 || s.Head != 10 || s.Behind != 5 || s.TimeBehind != 5*time.Minute {
			t.Errorf("%s: stopped projector %+v; want checkpoint 5, behind 5 and 5m", when, s)
		}
		if ok := all[1]; ok.Behind != 0 || ok.TimeBehind != 0 || ok.State != projection.Running {
			t.Errorf("%s: healthy projector %+v", when, ok)
		}
	}
	check("first run")
	r.Close()
	if s := statusOf(t, r, "v"); s.State != projection.Closed {
		t.Errorf("after Close state %v", s.State)
	}

	// After a restart nothing has been applied in this process; the lag
	// must still be measured from the checkpoint.
	r, _ = run()
	start(t, r)
	eventually(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
	check("after restart")
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
	if err := r.Sync(ctx, 5); !errors.Is(err, projection.ErrNotStarted) {
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

// selfCP stores its checkpoint with its view.
type selfCP struct {
	sumView
	at event.Position
}

func (s *selfCP) LoadCheckpoint(context.Context) (projection.Checkpoint, error) {
	return projection.Checkpoint{Position: s.at}, nil
}

func TestSelfCheckpointer(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 5, 5)
	cps := &projection.MemoryCheckpoints{}
	p := &selfCP{sumView: *newSumView("self"), at: 3}
	r := projection.NewRunner(st, projection.WithCheckpoints(cps))
	add(t, r, p, projection.AsAsync())
	start(t, r)
	waitFor(t, r, "self", 5)
	if a := p.Applied(); !slices.Equal(a, []event.Position{4, 5}) {
		t.Errorf("applied %v, want [4 5]", a)
	}
	if cp, _ := cps.Load(ctx, "self"); cp != (projection.Checkpoint{}) {
		t.Errorf("runner saved %+v for a SelfCheckpointer", cp)
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
	if err := r.Sync(ctx, 1); !errors.Is(err, projection.ErrNotStarted) {
		t.Errorf("Sync before Start = %v", err)
	}
	if err := r.Rebuild(ctx, "v"); !errors.Is(err, projection.ErrNotStarted) {
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
		if !errors.Is(err, projection.ErrUnknownProjector) {
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
		if !errors.Is(err, projection.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", what, err)
		}
	}
	for _, x := range []interface{ String() string }{projection.Inline, projection.Async, projection.Stop, projection.Park, projection.Running, projection.State(42)} {
		if x.String() == "" {
			t.Errorf("%#v has no name", x)
		}
	}
}

// countHandler counts slog records by level.
type countHandler struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[r.Level]++
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

func (h *countHandler) counts() map[slog.Level]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.n)
}

func TestLoggingStaysOffTheHotPath(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	h := &countHandler{n: map[slog.Level]int{}}
	r := projection.NewRunner(st, projection.WithLogger(slog.New(h)))
	park, stop := newSumView("park"), newSumView("stop")
	park.failAt.Store(3)
	stop.failAt.Store(7)
	add(t, r, newSumView("inline"))
	add(t, r, newSumView("async"), projection.AsAsync())
	add(t, r, park, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(1))
	add(t, r, stop, projection.AsAsync(), fast(1))
	start(t, r)
	bus := newBus(st, r)
	for i := 1; i <= 50; i++ {
		if _, err := command.Dispatch(ctx, bus, addCmd{Stream: "s", N: i}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, r, "async", 50)
	waitFor(t, r, "park", 50)
	eventually(t, "stopped", func() bool { return statusOf(t, r, "stop").State == projection.Stopped })
	want := map[slog.Level]int{slog.LevelWarn: 1, slog.LevelError: 1} // one park, one stop
	if got := h.counts(); !maps.Equal(got, want) {
		t.Errorf("log records by level = %v, want %v", got, want)
	}
	if err := r.Rebuild(ctx, "async"); err != nil {
		t.Fatal(err)
	}
	if got := h.counts()[slog.LevelInfo]; got != 1 {
		t.Errorf("%d info records after a rebuild, want 1", got)
	}
}

// A parked event survives a restart: the checkpoint is past it, but the
// dead letter is in the ParkStore and the record is read back from the log.
func TestParkedEventsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 10, 4)
	cps := &projection.MemoryCheckpoints{}
	v := newSumView("park")
	v.failAt.Store(5)
	r1 := projection.NewRunner(st, projection.WithCheckpoints(cps))
	add(t, r1, v, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(1))
	start(t, r1)
	waitFor(t, r1, "park", 10)
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	if dls, _ := cps.LoadParked(ctx, "park"); len(dls) != 1 || dls[0].Position != 5 || dls[0].Err == "" {
		t.Fatalf("dead letters after close: %+v", dls)
	}

	r2 := projection.NewRunner(st, projection.WithCheckpoints(cps))
	add(t, r2, v, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(1))
	start(t, r2)
	defer r2.Close()
	parked, err := r2.Parked("park")
	if err != nil || len(parked) != 1 || parked[0].Record.Position != 5 || parked[0].Record.Data != (added{N: 5}) {
		t.Fatalf("after restart Parked = %+v, %v", parked, err)
	}
	v.failAt.Store(0)
	if err := r2.Replay(ctx, "park", 5); err != nil {
		t.Fatal(err)
	}
	if dls, _ := cps.LoadParked(ctx, "park"); len(dls) != 0 {
		t.Errorf("dead letter kept after a successful Replay: %+v", dls)
	}
	if v.Total() != sumTo(10) {
		t.Errorf("total %d, want %d", v.Total(), sumTo(10))
	}
}

type failingParks struct {
	projection.MemoryCheckpoints
}

func (*failingParks) Park(context.Context, string, projection.DeadLetter) error {
	return errors.New("disk full")
}

// If the dead letter cannot be stored, the projector stops at the event
// rather than move its checkpoint past an event recorded nowhere.
func TestParkFailureStopsInsteadOfLosing(t *testing.T) {
	st := newMemory(t)
	appendN(t, st, 10, 10)
	v := newSumView("park")
	v.failAt.Store(5)
	r := projection.NewRunner(st, projection.WithCheckpoints(&failingParks{}))
	add(t, r, v, projection.WithPolicy(projection.Park), fast(1))
	err := r.Start(context.Background())
	defer r.Close()
	var se *projection.StoppedError
	if !errors.As(err, &se) || se.Position != 5 {
		t.Fatalf("Start = %v, want a stop at 5", err)
	}
	if s := statusOf(t, r, "park"); s.State != projection.Stopped || s.Checkpoint != 4 {
		t.Errorf("status = %+v", s)
	}
}
