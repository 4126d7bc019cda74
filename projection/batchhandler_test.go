package projection_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// batchView is a sumView that also takes batches: it applies a whole batch
// under one lock. batchFailAt makes only HandleBatch fail at a position
// (Handle still applies it); sumView's failAt makes both fail there.
type batchView struct {
	*sumView
	batches     atomic.Int64 // HandleBatch calls
	batched     atomic.Int64 // records applied by HandleBatch
	batchFailAt atomic.Uint64
	batchPanic  atomic.Bool // panic instead of failing at batchFailAt
}

var _ projection.BatchHandler = (*batchView)(nil)

func newBatchView(name string) *batchView { return &batchView{sumView: newSumView(name)} }

func (v *batchView) HandleBatch(_ context.Context, recs []event.Record) (int, error) {
	return v.applyBatch(v.cur.Load(), recs, true)
}

// applyBatch applies recs to s under one lock; it stops before the first
// record it must fail on, having applied the ones before it.
func (v *batchView) applyBatch(s *sumState, recs []event.Record, live bool) (int, error) {
	v.batches.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, rec := range recs {
		if i > 0 && rec.Position <= recs[i-1].Position {
			return i, fmt.Errorf("batch out of order at %v", rec.Position)
		}
		if p := v.batchFailAt.Load(); p != 0 && event.Position(p) == rec.Position {
			if v.batchPanic.Load() {
				if i > 0 {
					return i, errFault // the contract: report what was applied
				}
				panic("batch panic")
			}
			return i, fmt.Errorf("batch at %v: %w", rec.Position, errFault)
		}
		if p := v.failAt.Load(); p != 0 && event.Position(p) == rec.Position {
			v.tries.Add(1)
			return i, fmt.Errorf("at %v: %w", rec.Position, errFault)
		}
		a, ok := rec.Data.(added)
		if !ok {
			continue
		}
		s.parts[rec.Stream] += a.N * v.factor
		s.total += a.N * v.factor
		s.count++
		s.applied = append(s.applied, rec.Position)
		v.batched.Add(1)
		if live && v.onApply != nil {
			v.onApply(rec)
		}
	}
	return len(recs), nil
}

// batchShadow is a shadow handler that takes batches.
type batchShadow struct {
	v *batchView
	s *sumState
}

func (b batchShadow) Handle(_ context.Context, rec event.Record) error { return b.v.apply(b.s, rec) }

func (b batchShadow) HandleBatch(_ context.Context, recs []event.Record) (int, error) {
	return b.v.applyBatch(b.s, recs, false)
}

func (v *batchView) Shadow(context.Context) (projection.Shadow, error) {
	v.shadows.Add(1)
	s := newSumState()
	return projection.Shadow{Handler: batchShadow{v, s}, Swap: func() { v.cur.Store(s) }}, nil
}

func checkpointOf(t *testing.T, cps projection.CheckpointStore, name string) event.Position {
	t.Helper()
	cp, err := cps.Load(context.Background(), name)
	require.NoError(t, err)
	return cp.Position
}

func TestBatchHandlerCatchUpAndFollow(t *testing.T) {
	st := newMemory(t)
	appendN(t, st, 1000, 100)
	cps := &projection.MemoryCheckpoints{}
	r := projection.NewRunner(st, projection.WithBatchSize(64), projection.WithCheckpoints(cps))
	v := newBatchView("sum")
	// Every apply happens after the previous position was published, never
	// before: WaitFor never returns ahead of the view.
	var seen atomic.Int64
	v.onApply = func(rec event.Record) { seen.Store(int64(rec.Position)) }
	add(t, r, v, projection.AsAsync())
	start(t, r)
	waitFor(t, r, "sum", 1000)
	require.EqualValues(t, sumTo(1000), v.Total())
	require.EqualValues(t, 1000, seen.Load())
	for range 5 {
		waitFor(t, r, "sum", appendN(t, st, 3, 3))
	}
	require.EqualValues(t, sumTo(1015), v.Total())
	require.Equal(t, partsTo(1015, 1), v.Parts())
	v.checkApplied(t)
	require.Len(t, v.Applied(), 1015, "each position applied once")
	require.Greater(t, v.batches.Load(), int64(15), "catch-up went through HandleBatch")
	require.LessOrEqual(t, v.batches.Load(), int64(1015/2), "records came in batches")
	require.EqualValues(t, 1015, checkpointOf(t, cps, "sum"))
}

func TestBatchHandlerInlineSync(t *testing.T) {
	st := newMemory(t)
	r := projection.NewRunner(st, projection.WithBatchSize(32))
	v := newBatchView("sum")
	add(t, r, v)
	start(t, r)
	// Several commits before one Sync arrive as one batch; one commit of
	// one event goes to Handle.
	head := appendN(t, st, 100, 10)
	require.NoError(t, r.Sync(context.Background(), head))
	require.EqualValues(t, sumTo(100), v.Total(), "read-your-writes after Sync")
	before := v.batches.Load()
	require.NoError(t, r.Sync(context.Background(), appendN(t, st, 1, 1)))
	require.Equal(t, before, v.batches.Load(), "a single record goes to Handle")
	require.EqualValues(t, sumTo(101), v.Total())
	v.checkApplied(t)
}

// A record that fails in the middle of a batch: the checkpoint stays at the
// last fully applied position, the runner retries the record on its own,
// and after the fault is gone redelivery gives the exact result.
func TestBatchHandlerFailureMidBatchStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 200, 200)
		cps := &projection.MemoryCheckpoints{}
		r := projection.NewRunner(st, projection.WithBatchSize(50), projection.WithCheckpoints(cps))
		v := newBatchView("sum")
		v.failAt.Store(77)
		add(t, r, v, projection.AsAsync(), fast(3))
		start(t, r)
		ctx := context.Background()
		settled(t, "stopped", func() bool { return statusOf(t, r, "sum").State == projection.Stopped })
		s := statusOf(t, r, "sum")
		require.ErrorIs(t, s.Err, errFault, "status = %+v", s)
		require.EqualValues(t, 76, s.Checkpoint, "status = %+v", s)
		require.EqualValues(t, 76, checkpointOf(t, cps, "sum"), "durable checkpoint at the last applied position")
		require.EqualValues(t, sumTo(76), v.Total(), "nothing after the failed record applied")
		require.EqualValues(t, 1+3, v.tries.Load(), "the batch, then the configured attempts on its own")
		v.failAt.Store(0)
		require.NoError(t, r.Resume(ctx, "sum"))
		waitFor(t, r, "sum", 200)
		require.EqualValues(t, sumTo(200), v.Total())
		require.Equal(t, partsTo(200, 1), v.Parts())
		require.Len(t, v.Applied(), 200)
		v.checkApplied(t)
		require.EqualValues(t, 200, checkpointOf(t, cps, "sum"))
	})
}

func TestBatchHandlerFailureMidBatchParks(t *testing.T) {
	st := newMemory(t)
	appendN(t, st, 200, 200)
	r := projection.NewRunner(st, projection.WithBatchSize(50))
	v := newBatchView("sum")
	v.failAt.Store(120)
	add(t, r, v, projection.AsAsync(), fast(2), projection.WithPolicy(projection.Park))
	start(t, r)
	waitFor(t, r, "sum", 200)
	require.EqualValues(t, sumTo(200)-120, v.Total())
	dls, err := r.Parked("sum")
	require.NoError(t, err)
	require.Len(t, dls, 1)
	require.EqualValues(t, 120, dls[0].Record.Position)
	require.Equal(t, 2, dls[0].Attempts, "the policy saw the configured attempts")
	v.checkApplied(t)
	require.Len(t, v.Applied(), 199)
}

// HandleBatch may fail (or panic) where Handle succeeds: the record is
// applied once, by Handle, and the batch resumes after it.
func TestBatchHandlerFallsBackToHandle(t *testing.T) {
	for _, panics := range []bool{false, true} {
		t.Run(fmt.Sprintf("panic=%v", panics), func(t *testing.T) {
			st := newMemory(t)
			appendN(t, st, 300, 300)
			cps := &projection.MemoryCheckpoints{}
			r := projection.NewRunner(st, projection.WithBatchSize(100), projection.WithCheckpoints(cps))
			v := newBatchView("sum")
			v.batchPanic.Store(panics)
			v.batchFailAt.Store(150)
			add(t, r, v, projection.AsAsync())
			start(t, r)
			waitFor(t, r, "sum", 300)
			require.EqualValues(t, sumTo(300), v.Total())
			require.Len(t, v.Applied(), 300, "each position once")
			v.checkApplied(t)
			require.EqualValues(t, 299, v.batched.Load(), "all but the failed record through HandleBatch")
			s := statusOf(t, r, "sum")
			require.Nil(t, s.Err, "status = %+v", s)
			require.EqualValues(t, 300, checkpointOf(t, cps, "sum"))
		})
	}
}

func TestBatchHandlerRebuild(t *testing.T) {
	st := newMemory(t)
	appendN(t, st, 500, 50)
	r := projection.NewRunner(st, projection.WithBatchSize(64))
	v := newBatchView("sum")
	add(t, r, v, projection.AsAsync())
	start(t, r)
	waitFor(t, r, "sum", 500)
	live := v.Parts()
	v.batchFailAt.Store(250) // the shadow's batch falls back to Handle there
	before := v.batches.Load()
	require.NoError(t, r.Rebuild(context.Background(), "sum"))
	require.Greater(t, v.batches.Load(), before, "the replay went through HandleBatch")
	require.Equal(t, live, v.Parts(), "rebuilt == caught up")
	require.Len(t, v.Applied(), 500)
	v.checkApplied(t)
}

// Random logs and failure points: a projector fed one record at a time,
// one caught up in batches, and one rebuilt in batches end with the same
// state, each position applied exactly once, in order.
func TestBatchHandlerProperty(t *testing.T) {
	for seed := range 20 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 15))
			st := newMemory(t)
			ctx := context.Background()
			n := 1 + rng.IntN(400)
			cps := &projection.MemoryCheckpoints{}
			r := projection.NewRunner(st, projection.WithBatchSize(1+rng.IntN(80)), projection.WithCheckpoints(cps))
			inline := newSumView("inline") // per event: no HandleBatch
			async := newBatchView("async")
			if rng.IntN(2) == 0 {
				async.batchFailAt.Store(uint64(1 + rng.IntN(n)))
				async.batchPanic.Store(rng.IntN(2) == 0)
			}
			add(t, r, inline)
			add(t, r, async, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(2))
			start(t, r)
			// Commits of random sizes, each synced on its own, so inline
			// sees them one dispatch at a time.
			var head event.Position
			for done := 0; done < n; {
				k := min(1+rng.IntN(5), n-done)
				head = appendN(t, st, k, k)
				require.NoError(t, r.Sync(ctx, head))
				done += k
			}
			waitFor(t, r, "async", head)
			require.Equal(t, inline.Parts(), async.Parts(), "batch caught up == incremental")
			require.NoError(t, r.Rebuild(ctx, "async"))
			require.Equal(t, inline.Parts(), async.Parts(), "rebuilt == incremental")
			require.EqualValues(t, sumTo(n), async.Total())
			require.Len(t, async.Applied(), n)
			async.checkApplied(t)
			require.EqualValues(t, head, checkpointOf(t, cps, "async"))
		})
	}
}

// Readers run against a view caught up in batches (for the race detector).
func TestBatchHandlerConcurrentReaders(t *testing.T) {
	st := newMemory(t)
	appendN(t, st, 2000, 100)
	r := projection.NewRunner(st, projection.WithBatchSize(128))
	v := newBatchView("sum")
	add(t, r, v, projection.AsAsync())
	start(t, r)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := v.cur.Load()
				s.mu.RLock()
				sum := 0
				for _, p := range s.parts {
					sum += p
				}
				total := s.total
				s.mu.RUnlock()
				if !assert.Equal(t, total, sum, "a batch is applied under one lock") {
					return
				}
			}
		})
	}
	waitFor(t, r, "sum", 2000)
	waitFor(t, r, "sum", appendN(t, st, 500, 7))
	close(stop)
	wg.Wait()
	require.EqualValues(t, sumTo(2500), v.Total())
}

// batchShared is a sharedView (self-checkpointed, fenced) that takes
// batches: it applies them in place, one fenced write per record, and
// reports how far it got.
type batchShared struct {
	*sharedView
	batches atomic.Int64
}

func (v *batchShared) HandleBatch(ctx context.Context, recs []event.Record) (int, error) {
	v.batches.Add(1)
	for i, rec := range recs {
		if err := v.Handle(ctx, rec); err != nil {
			return i, err
		}
	}
	return len(recs), nil
}

// An owner paused in the middle of a batch past its lease: its write is
// refused, it drops the rest of the batch and stands by; the new owner
// applies everything exactly once.
func TestBatchHandlerFencedOwnerDropsBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 100, 10)
		clock := &skewClock{}
		ls := projection.NewMemoryLeases(clock.now)
		ra := projection.NewRunner(st, projection.WithLeases(ls, "a", ttl), projection.WithBatchSize(16))
		view := &batchShared{sharedView: newSharedView("v", ls)}
		view.gate, view.gateAt, view.gateOwner = make(chan struct{}), 60, "a"
		add(t, ra, view, projection.AsAsync())
		start(t, ra)
		synctest.Wait() // a blocks at 60, inside a batch
		require.Positive(t, view.batches.Load())
		rb := projection.NewRunner(st, projection.WithLeases(ls, "b", ttl), projection.WithBatchSize(16))
		add(t, rb, view, projection.AsAsync())
		start(t, rb)
		time.Sleep(ttl)
		require.Equal(t, projection.Standby, statusOf(t, rb, "v").State)

		clock.jump(2 * ttl)
		untilState(t, rb, "v", projection.Running, ttl)
		close(view.gate)
		untilState(t, ra, "v", projection.Standby, ttl)
		require.Equal(t, int64(1), view.rejected.Load(), "the stale write was refused, and no other was tried")

		head := appendN(t, st, 40, 10)
		waitFor(t, rb, "v", head)
		view.exactlyOnce(t, head)
	})
}

// Partitions hand their batches only their own streams' records, in order,
// whether a read holds many of them, one or none.
func TestBatchHandlerPartitions(t *testing.T) {
	for _, tc := range []struct{ parts, batch int }{{3, 32}, {8, 4}} {
		t.Run(fmt.Sprintf("partitions=%d/batch=%d", tc.parts, tc.batch), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := newMemory(t)
				head := appendN(t, st, 500, 13)
				ls := projection.NewMemoryLeases(time.Now)
				r := projection.NewRunner(st, projection.WithLeases(ls, "a", ttl), projection.WithBatchSize(tc.batch))
				view := &batchShared{sharedView: newSharedView("v", ls)}
				add(t, r, view, projection.AsAsync(), projection.WithPartitions(tc.parts))
				start(t, r)
				waitFor(t, r, "v", head)
				head = appendN(t, st, 300, 7)
				waitFor(t, r, "v", head)
				view.exactlyOnce(t, head)
				if tc.parts == 3 {
					require.Positive(t, view.batches.Load())
				}
			})
		})
	}
}
