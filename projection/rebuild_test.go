package projection_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
					assert.NoError(t, err)
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
		require.NoError(t, r.Rebuild(ctx, "live"))
	}
	close(stop)
	wg.Wait()
	head, _ := st.Head(ctx)
	waitFor(t, r, "", head)
	got := v.shadows.Load()
	assert.EqualValues(t, 3, got, "%d shadows, want 3", got)
	assert.Equal(t, ref.Parts(), v.Parts(), "rebuilt view (%d events) differs from the incremental one (%d)", v.Count(), ref.Count())
	assert.EqualValues(t, ref.Total(), v.Total(), "rebuilt view (%d events) differs from the incremental one (%d)", v.Count(), ref.Count())
	assert.EqualValues(t, int(head), v.Count(), "rebuilt view (%d events) differs from the incremental one (%d)", v.Count(), ref.Count())
	v.checkApplied(t)
	assert.NotZero(t, reads.Load(), "readers never ran")
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

func (g *gatedShadow) Shadow(ctx context.Context) (projection.Shadow, error) {
	s, err := g.sumView.Shadow(ctx)
	h := s.Handler
	s.Handler = event.HandlerFunc(func(ctx context.Context, rec event.Record) error {
		if rec.Position == g.at {
			close(g.entered)
			<-g.release
		}
		return h.Handle(ctx, rec)
	})
	return s, err
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
	s := statusOf(t, r, "v")
	assert.EqualValues(t, projection.Rebuilding, s.State, "state during rebuild = %v", s.State)
	err := r.Rebuild(ctx, "v")
	assert.ErrorContains(t, err, "rebuild already in progress", "second Rebuild = %v, want ErrRebuilding", err)
	// The live view keeps serving and following while the shadow is built.
	waitFor(t, r, "v", appendN(t, st, 10, 1))
	assert.EqualValues(t, sumTo(110), g.Total(), "live total during rebuild = %d, want %d", g.Total(), sumTo(110))
	close(g.release)
	require.NoError(t, <-done)
	assert.EqualValues(t, sumTo(110), g.Total(), "after rebuild total = %d", g.Total())
	assert.EqualValues(t, 1, g.shadows.Load(), "after rebuild total = %d", g.Total())
	g.checkApplied(t)
	s = statusOf(t, r, "v")
	assert.EqualValues(t, projection.Running, s.State, "status after rebuild %+v", s)
	assert.EqualValues(t, 110, s.Checkpoint, "status after rebuild %+v", s)
}

func TestRebuildClearsStopAndFollowingResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := newMemory(t)
		appendN(t, st, 10, 10)
		r := projection.NewRunner(st)
		v := newSumView("v")
		v.failAt.Store(4)
		add(t, r, v, projection.AsAsync(), fast(2))
		start(t, r)
		settled(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })

		// A rebuild while still broken retries like live delivery, fails, and
		// leaves the live view alone.
		err := r.Rebuild(ctx, "v")
		assert.ErrorIs(t, err, projection.ErrStopped, "Rebuild of a broken projector = %v, want ErrStopped", err)
		assert.ErrorIs(t, err, errFault, "Rebuild of a broken projector = %v, want ErrStopped", err)
		got := v.tries.Load()
		assert.EqualValues(t, 4, got, "%d tries, want 2 live and 2 in the rebuild", got)
		s := statusOf(t, r, "v")
		assert.EqualValues(t, projection.Stopped, s.State, "after a failed rebuild: %+v, count %d", s, v.Count())
		assert.EqualValues(t, 3, v.Count(), "after a failed rebuild: %+v, count %d", s, v.Count())

		v.failAt.Store(0)
		if err := r.Rebuild(ctx, "v"); err != nil { // instead of Resume
			require.NoError(t, err)
		}
		s = statusOf(t, r, "v")
		assert.Nil(t, s.Err, "after rebuild %+v", s)
		assert.EqualValues(t, 10, s.Checkpoint, "after rebuild %+v", s)
		// The async goroutine must follow new commits again.
		waitFor(t, r, "v", appendN(t, st, 5, 1))
		assert.EqualValues(t, sumTo(15), v.Total(), "total %d, want %d", v.Total(), sumTo(15))
	})
}

func TestVersionChangeRebuildsAtStart(t *testing.T) {
	ctx := context.Background()
	t.Run("Rebuilder", func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 50, 10)
		cps := &projection.MemoryCheckpoints{}
		v := newSumView("sum")
		r1 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r1, v, projection.WithVersion(1), projection.AsAsync())
		start(t, r1)
		waitFor(t, r1, "sum", 50)
		r1.Close()
		cp, _ := cps.Load(ctx, "sum")
		require.EqualValues(t, (projection.Checkpoint{Position: 50, Version: 1}), cp, "checkpoint %+v", cp)

		v.factor = 2 // new logic, new version
		r2 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r2, v, projection.WithVersion(2), projection.AsAsync())
		start(t, r2) // rebuilds before returning
		require.EqualValues(t, 1, v.shadows.Load(), "after Start: %d shadows, parts %v", v.shadows.Load(), v.Parts())
		require.Equal(t, partsTo(50, 2), v.Parts(), "after Start: %d shadows, parts %v", v.shadows.Load(), v.Parts())
		cp, _ = cps.Load(ctx, "sum")
		assert.EqualValues(t, (projection.Checkpoint{Position: 50, Version: 2}), cp, "checkpoint after rebuild %+v", cp)
		s := statusOf(t, r2, "sum")
		assert.EqualValues(t, 2, s.Version, "status version %d", s.Version)
		waitFor(t, r2, "sum", appendN(t, st, 10, 10))
		assert.EqualValues(t, 2*sumTo(60), v.Total(), "total %d, want %d", v.Total(), 2*sumTo(60))
		r2.Close()

		r3 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r3, v, projection.WithVersion(2), projection.AsAsync())
		start(t, r3)
		assert.EqualValues(t, 1, v.shadows.Load(), "an unchanged version was rebuilt")
	})
	t.Run("NotRebuildable", func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 5, 5)
		cps := &projection.MemoryCheckpoints{}
		r1 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		err := r1.Add(&plain{}, projection.WithVersion(1))
		assert.ErrorContains(t, err, "does not implement projection.Rebuilder", "Add with WithVersion = %v, want an error at once", err)
		add(t, r1, &plain{})
		start(t, r1)
		err = r1.Rebuild(ctx, "plain")
		assert.ErrorContains(t, err, "does not implement projection.Rebuilder", "Rebuild = %v, want a not-rebuildable error", err)
		r1.Close()

		// A checkpoint saved at another version (say, by an earlier
		// rebuildable implementation) cannot be honoured.
		require.NoError(t, cps.Save(ctx, "plain", projection.Checkpoint{Position: 5, Version: 1}))
		r2 := projection.NewRunner(st, projection.WithCheckpoints(cps))
		add(t, r2, &plain{})
		err = r2.Start(ctx)
		defer r2.Close()
		assert.ErrorContains(t, err, "does not implement projection.Rebuilder", "Start = %v, want a not-rebuildable error", err)
	})
}

// flushing is a sumView whose shadow counts its Flush calls.
type flushing struct {
	*sumView
	flushes  atomic.Int64
	noSwap   bool
	flushErr error
}

func (f *flushing) Shadow(ctx context.Context) (projection.Shadow, error) {
	s, err := f.sumView.Shadow(ctx)
	s.Flush = func(context.Context) error { f.flushes.Add(1); return f.flushErr }
	if f.noSwap {
		s.Swap = nil
	}
	return s, err
}

func TestRebuildFlushesTheShadowBeforeTheSwap(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 20, 5)
	f := &flushing{sumView: newSumView("v")}
	r := projection.NewRunner(st)
	add(t, r, f)
	start(t, r)
	require.NoError(t, r.Rebuild(ctx, "v"))
	assert.EqualValues(t, 2, f.flushes.Load(), "after the bulk replay and before the swap")
	assert.Equal(t, sumTo(20), f.Total())

	f.flushErr = errors.New("flush failed")
	err := r.Rebuild(ctx, "v")
	require.ErrorIs(t, err, f.flushErr)
	assert.Equal(t, sumTo(20), f.Total(), "the live view stays")

	bad := &flushing{sumView: newSumView("bad"), noSwap: true}
	r2 := projection.NewRunner(st)
	add(t, r2, bad)
	start(t, r2)
	require.ErrorContains(t, r2.Rebuild(ctx, "bad"), "no Handler or no Swap")
}
