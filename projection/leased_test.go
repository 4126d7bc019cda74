package projection_test

import (
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/require"
)

// sharedView is a read model shared by every runner (as a database would
// be): it keeps its checkpoint itself, one per partition, and conditions
// each write on the fence it is given, so a stale owner's write is
// refused. It records how often each position was applied and whether
// every stream's records arrived in order.
type sharedView struct {
	name string
	ls   *projection.MemoryLeases

	gate      chan struct{} // when set, gateOwner's Handle waits on it at gateAt
	gateAt    event.Position
	gateOwner string

	rejected atomic.Int64 // writes refused by the fence

	mu       sync.Mutex
	applied  map[event.Position]int
	last     map[string]uint64 // stream -> last version applied
	disorder []string
	wrongCtx int // records delivered to a partition they do not hash to
}

func newSharedView(name string, ls *projection.MemoryLeases) *sharedView {
	return &sharedView{name: name, ls: ls, applied: map[event.Position]int{}, last: map[string]uint64{}}
}

func (v *sharedView) Name() string { return v.name }

func (v *sharedView) cpName(ctx context.Context) string {
	if p, ok := projection.PartitionFrom(ctx); ok {
		return "view/" + p.Name
	}
	return "view/" + v.name
}

func (v *sharedView) LoadCheckpoint(ctx context.Context) (projection.Checkpoint, error) {
	return v.ls.Load(ctx, v.cpName(ctx))
}

func (v *sharedView) Handle(ctx context.Context, rec event.Record) error {
	fence, ok := projection.FenceFrom(ctx)
	if !ok {
		return errors.New("sharedView: no fence in the context")
	}
	if v.gate != nil && rec.Position == v.gateAt && fence.Owner == v.gateOwner {
		<-v.gate
	}
	// The checkpoint moves first, under the fence: whoever acquires the
	// lease after this saw it and skips rec. A checkpoint already past
	// rec (a conflict) means a redelivery: nothing to do.
	err := v.ls.SaveFenced(ctx, v.cpName(ctx), projection.Checkpoint{Position: rec.Position}, fence)
	switch {
	case errors.Is(err, projection.ErrFenced):
		v.rejected.Add(1)
		return err
	case errors.Is(err, store.ErrConflict):
		return nil
	case err != nil:
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.applied[rec.Position]++
	if v.last[rec.Stream] >= rec.Version {
		v.disorder = append(v.disorder, fmt.Sprintf("%s v%d after v%d", rec.Stream, rec.Version, v.last[rec.Stream]))
	}
	v.last[rec.Stream] = rec.Version
	if p, ok := projection.PartitionFrom(ctx); ok && projection.PartitionOf(rec.Stream, p.Count) != p.Index {
		v.wrongCtx++
	}
	return nil
}

// exactlyOnce requires every position 1..head applied exactly once, in
// stream order.
func (v *sharedView) exactlyOnce(t *testing.T, head event.Position) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	for p := event.Position(1); p <= head; p++ {
		require.Equal(t, 1, v.applied[p], "position %v applied %d times", p, v.applied[p])
	}
	require.Len(t, v.applied, int(head))
	require.Empty(t, v.disorder, "records of a stream out of order")
	require.Zero(t, v.wrongCtx, "records delivered to the wrong partition")
}

// skewClock is a lease store clock that tests move forward by hand, on top
// of the (synctest) time: moving it past a TTL makes every lease lapse at
// once, as a paused owner would see it on waking up.
type skewClock struct{ d atomic.Int64 }

func (c *skewClock) now() time.Time       { return time.Now().Add(time.Duration(c.d.Load())) }
func (c *skewClock) jump(d time.Duration) { c.d.Add(int64(d)) }

const ttl = time.Second

// untilState sleeps (synctest time) until name's status in r is s.
func untilState(t *testing.T, r *projection.Runner, name string, s projection.State, within time.Duration) projection.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := statusOf(t, r, name)
		if got.State == s {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s of %s: state %v (owner %q), want %v within %v", name, r.Owner(), got.State, got.Owner, s, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLeasesOneOwnerAndHandoverOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 100, 10)
		ls := projection.NewMemoryLeases(nil)
		ra := projection.NewRunner(st, projection.WithLeases(ls, "a", ttl), projection.WithBatchSize(16))
		va := newSumView("v")
		add(t, ra, va, projection.AsAsync())
		start(t, ra)
		waitFor(t, ra, "v", 100)

		rb := projection.NewRunner(st, projection.WithLeases(ls, "b", ttl), projection.WithBatchSize(16))
		vb := newSumView("v")
		add(t, rb, vb, projection.AsAsync())
		start(t, rb)
		time.Sleep(3 * ttl)
		sa := statusOf(t, ra, "v")
		sb := statusOf(t, rb, "v")
		require.Equal(t, projection.Running, sa.State)
		require.True(t, sa.Leased)
		require.Equal(t, "a", sa.Owner)
		require.Equal(t, projection.Standby, sb.State)
		require.Equal(t, "a", sb.Owner, "the standby names the owner")
		require.Equal(t, sa.Epoch, sb.Epoch)
		require.Equal(t, event.Position(100), sb.Checkpoint, "the standby follows the owner's checkpoint")
		require.Zero(t, vb.Count(), "the standby delivered")

		appendN(t, st, 50, 10)
		waitFor(t, ra, "v", 150)
		waitFor(t, rb, "v", 150) // through the shared checkpoint
		require.Zero(t, vb.Count())
		require.Equal(t, 150, va.Count())

		// A graceful Close releases the lease at once: b takes over
		// within its poll interval, far below the TTL.
		require.NoError(t, ra.Close())
		t0 := time.Now()
		sb = untilState(t, rb, "v", projection.Running, ttl)
		require.Less(t, time.Since(t0), ttl/2, "takeover after a release waited for expiry")
		require.Equal(t, "b", sb.Owner)
		require.Greater(t, sb.Epoch, sa.Epoch, "a new owner gets a new epoch")
		appendN(t, st, 30, 10)
		waitFor(t, rb, "v", 180)
		require.Equal(t, 30, vb.Count(), "b resumes from a's checkpoint")
		require.Greater(t, vb.Applied()[0], event.Position(150))
		va.checkApplied(t)
		vb.checkApplied(t)
	})
}

func TestLeasesFencedOwnerStopsAndStandsBy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 100, 10)
		clock := &skewClock{}
		ls := projection.NewMemoryLeases(clock.now)
		ra := projection.NewRunner(st, projection.WithLeases(ls, "a", ttl), projection.WithBatchSize(16))
		view := newSharedView("v", ls)
		view.gate, view.gateAt, view.gateOwner = make(chan struct{}), 60, "a"
		add(t, ra, view, projection.AsAsync())
		start(t, ra)
		synctest.Wait() // a blocks at 60
		rb := projection.NewRunner(st, projection.WithLeases(ls, "b", ttl), projection.WithBatchSize(16))
		add(t, rb, view, projection.AsAsync())
		start(t, rb)
		time.Sleep(ttl)
		require.Equal(t, projection.Standby, statusOf(t, rb, "v").State)
		epochA := statusOf(t, ra, "v").Epoch

		// a is stuck past its lease (as in a GC pause or SIGSTOP): the
		// store's clock moves beyond the TTL, and b takes over.
		clock.jump(2 * ttl)
		sb := untilState(t, rb, "v", projection.Running, ttl)
		require.Equal(t, "b", sb.Owner)
		require.Greater(t, sb.Epoch, epochA)

		// a wakes up: its write at 60 is refused, it stops delivering and
		// stands by under b.
		close(view.gate)
		sa := untilState(t, ra, "v", projection.Standby, ttl)
		require.Equal(t, "b", sa.Owner)
		require.Equal(t, sb.Epoch, sa.Epoch)
		require.Equal(t, int64(1), view.rejected.Load(), "the stale write was not refused")

		head := appendN(t, st, 40, 10)
		waitFor(t, rb, "v", head)
		time.Sleep(ttl)
		require.Equal(t, projection.Standby, statusOf(t, ra, "v").State)
		view.exactlyOnce(t, head)
	})
}

func TestLeasesNeedFencedCheckpoints(t *testing.T) {
	st := newMemory(t)
	ls := projection.NewMemoryLeases(nil)
	r := projection.NewRunner(st, projection.WithLeases(ls, "a", ttl), projection.WithCheckpoints(&projection.MemoryCheckpoints{}))
	err := r.Add(newSumView("v"), projection.AsAsync())
	require.ErrorIs(t, err, projection.ErrUnfencedCheckpoints)
	// Local, inline and self-checkpointing projectors need no fence from
	// the checkpoint store.
	require.NoError(t, r.Add(newSumView("local"), projection.AsAsync(), projection.Local()))
	require.NoError(t, r.Add(newSumView("inline")))
	require.NoError(t, r.Add(newSharedView("self", ls), projection.AsAsync()))
	require.Error(t, r.Add(newSumView("p"), projection.WithPartitions(3)), "inline partitions")
}

// partitionView records, per partition, the records it was given.
type partitionView struct {
	mu   sync.Mutex
	last map[string]uint64
	bad  []string
	n    int
}

func (v *partitionView) Name() string { return "pv" }

func (v *partitionView) Handle(ctx context.Context, rec event.Record) error {
	p, ok := projection.PartitionFrom(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case !ok:
		v.bad = append(v.bad, "no partition in ctx")
	case projection.PartitionOf(rec.Stream, p.Count) != p.Index:
		v.bad = append(v.bad, fmt.Sprintf("%s in partition %d", rec.Stream, p.Index))
	case v.last[rec.Stream]+1 != rec.Version:
		v.bad = append(v.bad, fmt.Sprintf("%s: v%d after v%d", rec.Stream, rec.Version, v.last[rec.Stream]))
	}
	v.last[rec.Stream] = rec.Version
	v.n++
	return nil
}

func TestPartitionsRouteByStreamInOrder(t *testing.T) {
	st := newMemory(t)
	head := appendN(t, st, 500, 13)
	r := projection.NewRunner(st, projection.WithBatchSize(32))
	v := &partitionView{last: map[string]uint64{}}
	add(t, r, v, projection.AsAsync(), projection.WithPartitions(4))
	start(t, r)
	require.NoError(t, r.WaitFor(context.Background(), "", head))
	head = appendN(t, st, 300, 7)
	// The projector's own name waits for all its partitions.
	require.NoError(t, r.WaitFor(context.Background(), "pv", head))
	for i := range 4 {
		require.GreaterOrEqual(t, statusOf(t, r, projection.PartitionName("pv", i, 4)).Checkpoint, head)
	}
	v.mu.Lock()
	require.Empty(t, v.bad)
	require.Equal(t, 800, v.n)
	v.mu.Unlock()
	ss, err := r.Status(context.Background())
	require.NoError(t, err)
	require.Len(t, ss, 4)
	for i, s := range ss {
		require.NotNil(t, s.Partition)
		require.Equal(t, projection.Partition{Index: i, Count: 4, Name: projection.PartitionName("pv", i, 4)}, *s.Partition)
		require.Equal(t, s.Partition.Name, s.Name)
		require.False(t, s.Leased)
	}
}

// held counts the partitions of name that r delivers to.
func held(t *testing.T, r *projection.Runner) int {
	t.Helper()
	ss, err := r.Status(context.Background())
	require.NoError(t, err)
	n := 0
	for _, s := range ss {
		if s.Partition != nil && s.State != projection.Standby && s.Owner == r.Owner() {
			n++
		}
	}
	return n
}

// waitOwners waits until every partition has been applied up to pos by
// the runner that holds it. (A standby's checkpoint of a self-checkpointing
// partition is the partition's last applied record, which may stay below
// pos for good.)
func waitOwners(t *testing.T, pos event.Position, rs ...*projection.Runner) {
	t.Helper()
	deadline := time.Now().Add(10 * ttl)
	for {
		done := map[string]bool{}
		var names []string
		for _, r := range rs {
			ss, err := r.Status(context.Background())
			require.NoError(t, err)
			for _, s := range ss {
				if len(names) < len(ss) {
					names = append(names, s.Name)
				}
				if s.State != projection.Standby && s.Owner == r.Owner() && s.Checkpoint >= pos {
					done[s.Name] = true
				}
			}
		}
		if len(done) == len(names) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions at %v by their owners: %v of %v", pos, done, names)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPartitionsBalanceOverRunners(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 300, 10)
		ls := projection.NewMemoryLeases(nil)
		view := newSharedView("pv", ls)
		newRunner := func(owner string) *projection.Runner {
			r := projection.NewRunner(st, projection.WithLeases(ls, owner, ttl), projection.WithBatchSize(16))
			add(t, r, view, projection.AsAsync(), projection.WithPartitions(6))
			start(t, r)
			return r
		}
		a, b, c := newRunner("a"), newRunner("b"), newRunner("c")
		settle := func(want map[*projection.Runner]int) {
			t.Helper()
			deadline := time.Now().Add(10 * ttl)
			for {
				ok := true
				got := map[string]int{}
				for r, n := range want {
					got[r.Owner()] = held(t, r)
					ok = ok && got[r.Owner()] == n
				}
				if ok {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("partitions held %v, want %v", got, want)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		settle(map[*projection.Runner]int{a: 2, b: 2, c: 2})
		head := appendN(t, st, 100, 10)
		waitOwners(t, head, a, b, c)

		// c leaves: its partitions move to a and b.
		require.NoError(t, c.Close())
		settle(map[*projection.Runner]int{a: 3, b: 3})
		head = appendN(t, st, 100, 10)
		waitOwners(t, head, a, b)

		// c comes back: a and b give it its share.
		c = newRunner("c")
		settle(map[*projection.Runner]int{a: 2, b: 2, c: 2})
		head = appendN(t, st, 100, 10)
		waitOwners(t, head, a, b, c)
		view.exactlyOnce(t, head)
	})
}

// Two runners (as in two processes) share one projector through leases:
// one delivers, the other stands by and takes over when the first closes.
func ExampleWithLeases() {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()
	leases := projection.NewMemoryLeases(nil) // across processes: pgstore's Store
	newRunner := func(owner string) *projection.Runner {
		r := projection.NewRunner(st, projection.WithLeases(leases, owner, 400*time.Millisecond))
		_ = r.Add(projection.Named("orders", event.HandlerFunc(func(context.Context, event.Record) error { return nil })), projection.AsAsync())
		_ = r.Start(ctx)
		return r
	}
	show := func(r *projection.Runner, want projection.State) {
		for {
			s, _ := r.StatusOf(ctx, "orders")
			if s.State == want && s.Owner != "" {
				fmt.Printf("%s: %v, owner %s\n", r.Owner(), s.State, s.Owner)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	a := newRunner("a")
	show(a, projection.Running)
	b := newRunner("b")
	defer b.Close()
	show(b, projection.Standby)
	_ = a.Close() // releases the lease at once
	show(b, projection.Running)
	// Output:
	// a: running, owner a
	// b: standby, owner a
	// b: running, owner b
}

// Leased runners, owners and standbys, partitioned or not, leave no
// goroutine behind on Close or when Start's context ends, and release
// their leases.
func TestLeasesNoGoroutineLeaks(t *testing.T) {
	base := runtime.NumGoroutine()
	st := newMemory(t)
	appendN(t, st, 200, 20)
	ls := projection.NewMemoryLeases(nil)
	ctx, cancel := context.WithCancel(context.Background())
	var rs []*projection.Runner
	for _, owner := range []string{"a", "b"} {
		r := projection.NewRunner(st, projection.WithLeases(ls, owner, 300*time.Millisecond))
		add(t, r, newSumView("v"), projection.AsAsync())
		add(t, r, newSharedView("pv", ls), projection.AsAsync(), projection.WithPartitions(4))
		add(t, r, newSumView("local"), projection.AsAsync(), projection.Local())
		if owner == "a" {
			require.NoError(t, r.Start(ctx))
		} else {
			require.NoError(t, r.Start(context.Background()))
		}
		rs = append(rs, r)
	}
	time.Sleep(100 * time.Millisecond)
	cancel() // a stops with its context
	require.NoError(t, rs[1].Close())
	require.NoError(t, rs[0].Close())
	settle(t, base, "after Close of leased runners")
	live, err := ls.List(context.Background(), "")
	require.NoError(t, err)
	require.Empty(t, live, "leases left held after Close")
}

// TestLeasesRandomHandovers is a property test: whatever happens to the
// runners (they join, close, or all their leases lapse at once as after a
// long pause), a fenced self-checkpointing view applies every record
// exactly once, each stream in order.
func TestLeasesRandomHandovers(t *testing.T) {
	for seed := range 8 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rng := mathrand.New(mathrand.NewPCG(uint64(seed), 13))
				st := newMemory(t)
				clock := &skewClock{}
				ls := projection.NewMemoryLeases(clock.now)
				whole := newSharedView("whole", ls)
				parts := newSharedView("parts", ls)
				var live []*projection.Runner
				n := 0
				startOne := func() {
					n++
					r := projection.NewRunner(st, projection.WithLeases(ls, fmt.Sprintf("r%d", n), ttl), projection.WithBatchSize(1+rng.IntN(20)))
					add(t, r, whole, projection.AsAsync())
					add(t, r, parts, projection.AsAsync(), projection.WithPartitions(3))
					start(t, r)
					live = append(live, r)
				}
				startOne()
				for range 25 {
					switch op := rng.IntN(10); {
					case op < 4:
						appendN(t, st, 1+rng.IntN(40), 1+rng.IntN(7))
					case op < 6 && len(live) < 3:
						startOne()
					case op < 7 && len(live) > 1:
						i := rng.IntN(len(live))
						require.NoError(t, live[i].Close())
						live = append(live[:i], live[i+1:]...)
					case op < 8:
						clock.jump(2 * ttl) // every lease lapses: all owners are stale
					}
					time.Sleep(time.Duration(rng.IntN(int(2 * ttl))))
				}
				head := appendN(t, st, 10, 3)
				waitOwners(t, head, live...)
				whole.exactlyOnce(t, head)
				parts.exactlyOnce(t, head)
			})
		})
	}
}

// A projector whose checkpoint the runner saves: the stale owner's
// checkpoint save is refused, it drops the batch in hand, delivers
// nothing more and stands by, and the new owner resumes from the last
// checkpoint saved under a live lease.
func TestLeasesFencedCheckpointSave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		appendN(t, st, 100, 10)
		clock := &skewClock{}
		ls := projection.NewMemoryLeases(clock.now)
		ra := projection.NewRunner(st, projection.WithLeases(ls, "a", ttl), projection.WithBatchSize(16))
		va := newSumView("v")
		va.gate, va.gateAt = make(chan struct{}), 60 // the fourth batch is 49..64
		add(t, ra, va, projection.AsAsync())
		start(t, ra)
		synctest.Wait()
		require.Equal(t, 59, va.Count())
		rb := projection.NewRunner(st, projection.WithLeases(ls, "b", ttl), projection.WithBatchSize(16))
		vb := newSumView("v")
		add(t, rb, vb, projection.AsAsync())
		start(t, rb)
		clock.jump(2 * ttl)
		untilState(t, rb, "v", projection.Running, ttl)
		close(va.gate)
		sa := untilState(t, ra, "v", projection.Standby, ttl)
		require.Equal(t, "b", sa.Owner)
		cp, err := ls.Load(context.Background(), "v")
		require.NoError(t, err)
		require.GreaterOrEqual(t, cp.Position, event.Position(100), "b's checkpoint")
		// a did not learn of the loss before its save (its own clock says
		// the lease is still good), so it finished the batch in hand, but
		// its save was refused: nothing of the batch counts, and it
		// delivers nothing more.
		require.Equal(t, 64, va.Count())
		require.Equal(t, event.Position(49), vb.Applied()[0], "b resumes after a's last saved checkpoint (48)")
		head := appendN(t, st, 20, 5)
		waitFor(t, rb, "v", head)
		time.Sleep(ttl)
		require.Equal(t, 64, va.Count())
		require.Equal(t, int(head)-48, vb.Count())
	})
}

// Only the owner of a leased projector may rebuild it (its new checkpoint
// is saved under the fence); a standby is refused, and partitioned
// projectors cannot be rebuilt.
func TestLeasesRebuildByOwnerOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemory(t)
		head := appendN(t, st, 50, 10)
		ls := projection.NewMemoryLeases(nil)
		ra := projection.NewRunner(st, projection.WithLeases(ls, "a", ttl))
		va := newSumView("v")
		add(t, ra, va, projection.AsAsync())
		add(t, ra, newSumView("pv"), projection.AsAsync(), projection.WithPartitions(2))
		start(t, ra)
		waitFor(t, ra, "v", head)
		rb := projection.NewRunner(st, projection.WithLeases(ls, "b", ttl))
		add(t, rb, newSumView("v"), projection.AsAsync())
		start(t, rb)
		untilState(t, rb, "v", projection.Standby, ttl)

		require.Error(t, rb.Rebuild(context.Background(), "v"), "a standby rebuilt")
		require.Error(t, ra.Rebuild(context.Background(), projection.PartitionName("pv", 0, 2)), "a partition rebuilt")
		va.factor = 2
		require.NoError(t, ra.Rebuild(context.Background(), "v"))
		require.Equal(t, 2*sumTo(50), va.Total())
		cp, err := ls.Load(context.Background(), "v")
		require.NoError(t, err)
		require.Equal(t, head, cp.Position)
	})
}
