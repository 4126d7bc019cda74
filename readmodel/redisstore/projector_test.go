package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
	"github.com/cqrskit/cqrs/store"
)

// added is the test event: add N to the stream's counter.
type added struct{ N int }

func (added) EventType() string { return "redisstore.test.added" }

// counter is the test read model: a counter per stream and their total,
// written by one event together (the invariant readers check), and the
// positions applied, newest first.
type counter struct {
	ns     *redisstore.Namespace
	counts *redisstore.Store[string, int]
	last   *redisstore.Recent[event.Position]
	factor int
}

func newCounter(ns *redisstore.Namespace) *counter {
	return &counter{
		ns:     ns,
		counts: redisstore.NewStore[string, int](ns, "counts"),
		last:   redisstore.NewRecent[event.Position](ns, "applied", 3),
		factor: 1,
	}
}

const totalKey = "*total*"

func (c *counter) apply(ctx context.Context, _ *redisstore.Tx, rec event.Record) error {
	e, ok := rec.Data.(added)
	if !ok {
		return fmt.Errorf("unexpected event %T", rec.Data)
	}
	for _, k := range []string{rec.Stream, totalKey} {
		n, err := c.counts.Get(ctx, k)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := c.counts.Put(ctx, k, n+c.factor*e.N); err != nil {
			return err
		}
	}
	return c.last.Push(ctx, "all", rec.Position)
}

func (c *counter) projector(opts ...redisstore.ProjectorOption) *redisstore.Projector {
	return redisstore.NewProjector(c.ns, c.apply, opts...)
}

// model is the reference: what the counters must hold.
type model map[string]int

func (m model) add(stream string, n int) {
	m[stream] += n
	m[totalKey] += n
}

// appendEvents appends n random events to st over streams and records them
// in ref.
func appendEvents(t testing.TB, st *store.Memory, rng *rand.Rand, n, streams int, ref model) event.Position {
	t.Helper()
	var head event.Position
	for range n {
		s := fmt.Sprintf("s-%d", rng.IntN(streams))
		v := 1 + rng.IntN(9)
		pos, err := st.Update(context.Background(), func(tx store.Tx) error {
			tx.Record(s, added{N: v})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ref.add(s, v)
		head = pos
	}
	return head
}

// checkCounts fails t unless the counters equal ref.
func checkCounts(t testing.TB, c *counter, ref model) {
	t.Helper()
	keys := make([]string, 0, len(ref))
	for k := range ref {
		keys = append(keys, k)
	}
	got, found, err := c.counts.GetMany(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if !found[i] || got[i] != ref[k] {
			t.Errorf("counter %s = %d (found %v), want %d", k, got[i], found[i], ref[k])
		}
	}
	if n, err := c.counts.Len(context.Background()); err != nil || n != len(ref) {
		t.Errorf("%d counters (%v), want %d", n, err, len(ref))
	}
}

func startRunner(t testing.TB, st *store.Memory, p projection.Projector, opts ...projection.AddOption) *projection.Runner {
	t.Helper()
	r := projection.NewRunner(st, projection.WithBatchSize(16))
	if err := r.Add(p, append([]projection.AddOption{projection.AsAsync()}, opts...)...); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func waitFor(t testing.TB, r *projection.Runner, name string, pos event.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, name, pos); err != nil {
		s, _ := r.StatusOf(context.Background(), name)
		t.Fatalf("WaitFor(%v): %v; status %+v", pos, err, s)
	}
}

// TestProjectorExactlyOnce: a runner feeds the projector; the counters
// equal the reference, the checkpoint is the head, and a restarted runner
// (a new process) resumes from Redis without applying anything twice.
func TestProjectorExactlyOnce(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "counter")
	cv := newCounter(ns)
	st := store.NewMemory()
	ref := model{}
	rng := rand.New(rand.NewPCG(1, 2))
	head := appendEvents(t, st, rng, 300, 7, ref)

	p := cv.projector()
	r := startRunner(t, st, p)
	waitFor(t, r, "counter", head)
	checkCounts(t, cv, ref)
	if cp, err := p.LoadCheckpoint(context.Background()); err != nil || cp.Position != head {
		t.Fatalf("checkpoint %+v, %v; want %v", cp, err, head)
	}
	r.Close()

	// A new runner and projector: resume at the checkpoint.
	head = appendEvents(t, st, rng, 200, 7, ref)
	r2 := startRunner(t, st, cv.projector())
	waitFor(t, r2, "counter", head)
	checkCounts(t, cv, ref)
	last, err := cv.last.Items(context.Background(), "all")
	if err != nil || len(last) != 3 || last[0] != head || last[2] != head-2 {
		t.Errorf("recent positions %v, %v; want the last three, newest first", last, err)
	}
}

// TestProjectorConflict: two projectors on one namespace that both think
// they own it: the one whose batch started from a stale checkpoint is
// refused with store.ErrConflict and writes nothing.
func TestProjectorConflict(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "conflict")
	cv := newCounter(ns)
	ctx := context.Background()
	a, b := cv.projector(), cv.projector()
	for _, p := range []*redisstore.Projector{a, b} {
		if _, err := p.LoadCheckpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(pos event.Position) event.Record {
		return event.Record{Position: pos, Stream: "s", Data: added{N: 1}}
	}
	if err := a.Handle(ctx, rec(1)); err != nil {
		t.Fatal(err)
	}
	if err := a.FlushBatch(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Handle(ctx, rec(1)); err != nil {
		t.Fatal(err)
	}
	err := b.FlushBatch(ctx, 1)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) || ce.Actual != 1 || ce.Expected != 0 {
		t.Fatalf("stale FlushBatch: %v, want a *store.ConflictError 0 vs 1", err)
	}
	checkCounts(t, cv, model{"s": 1, totalKey: 1})
	// After the conflict b reloads, skips what is applied, and goes on.
	if err := b.Handle(ctx, rec(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Handle(ctx, rec(2)); err != nil {
		t.Fatal(err)
	}
	if err := b.FlushBatch(ctx, 2); err != nil {
		t.Fatalf("FlushBatch after reloading: %v", err)
	}
	checkCounts(t, cv, model{"s": 2, totalKey: 2})
}

// TestProjectorFailedRecordKeepsBatch: a record whose apply fails leaves
// nothing behind; the batch's other records commit.
func TestProjectorFailedRecordKeepsBatch(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "partial")
	ctx := context.Background()
	counts := redisstore.NewStore[string, int](ns, "counts")
	boom := errors.New("boom")
	p := redisstore.NewProjector(ns, func(ctx context.Context, _ *redisstore.Tx, rec event.Record) error {
		if err := counts.Put(ctx, fmt.Sprint(rec.Position), 1); err != nil {
			return err
		}
		if rec.Position == 2 {
			return boom
		}
		return nil
	})
	for pos := event.Position(1); pos <= 3; pos++ {
		err := p.Handle(ctx, event.Record{Position: pos})
		if (pos == 2) != errors.Is(err, boom) {
			t.Fatalf("Handle(%v): %v", pos, err)
		}
	}
	if err := p.FlushBatch(ctx, 3); err != nil {
		t.Fatal(err)
	}
	for pos, want := range map[string]bool{"1": true, "2": false, "3": true} {
		_, err := counts.Get(ctx, pos)
		if (err == nil) != want {
			t.Errorf("view of record %s: %v, want present %v", pos, err, want)
		}
	}
	// Replay applies the parked record; the checkpoint stays.
	if err := p.Replay(ctx, event.Record{Position: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := counts.Get(ctx, "4"); err != nil {
		t.Errorf("replayed record not applied: %v", err)
	}
	if cp, err := p.LoadCheckpoint(ctx); err != nil || cp.Position != 3 {
		t.Errorf("checkpoint after Replay = %+v, %v; want 3", cp, err)
	}
}

// TestProjectorPartitions: each partition has its own checkpoint.
func TestProjectorPartitions(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "parts")
	cv := newCounter(ns)
	p := cv.projector()
	ctx := context.Background()
	p0 := projection.WithPartition(ctx, projection.Partition{Index: 0, Count: 2, Name: projection.PartitionName("parts", 0, 2)})
	p1 := projection.WithPartition(ctx, projection.Partition{Index: 1, Count: 2, Name: projection.PartitionName("parts", 1, 2)})
	if err := p.Handle(p0, event.Record{Position: 5, Stream: "a", Data: added{N: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := p.FlushBatch(p0, 5); err != nil {
		t.Fatal(err)
	}
	// Partition 1 is at 0: position 3 is new to it. Loading partition
	// 0's checkpoint meanwhile (a runner taking over that partition)
	// leaves partition 1's batch alone.
	if err := p.Handle(p1, event.Record{Position: 3, Stream: "b", Data: added{N: 2}}); err != nil {
		t.Fatal(err)
	}
	if cp, err := p.LoadCheckpoint(p0); err != nil || cp.Position != 5 {
		t.Fatalf("LoadCheckpoint(partition 0) = %+v, %v", cp, err)
	}
	if err := p.FlushBatch(p1, 3); err != nil {
		t.Fatal(err)
	}
	for ctx, want := range map[context.Context]event.Position{p0: 5, p1: 3, ctx: 0} {
		if cp, err := redisstore.NewProjector(ns, cv.apply).LoadCheckpoint(ctx); err != nil || cp.Position != want {
			t.Errorf("checkpoint = %+v, %v; want %v", cp, err, want)
		}
	}
	checkCounts(t, cv, model{"a": 1, "b": 2, totalKey: 3})
}

// TestReadersNeverSeeHalfAnEvent: readers read a counter and the total in
// one round trip while the projector writes; every read is consistent
// (the total equals the sum of the counters, read together), because a
// batch is applied by one script.
func TestReadersNeverSeeHalfAnEvent(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "race")
	cv := newCounter(ns)
	st := store.NewMemory()
	ref := model{}
	rng := rand.New(rand.NewPCG(3, 4))
	r := startRunner(t, st, cv.projector())

	keys := []string{"s-0", "s-1", "s-2", totalKey}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	reads := make([]int, 4)
	for i := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, _, err := cv.counts.GetMany(context.Background(), keys)
				if err != nil {
					errs <- err
					return
				}
				if got[0]+got[1]+got[2] != got[3] {
					errs <- fmt.Errorf("read %v: counters do not add up to the total", got)
					return
				}
				reads[i]++
			}
		})
	}
	var head event.Position
	for range 10 {
		head = appendEvents(t, st, rng, 40, 3, ref)
		waitFor(t, r, "race", head)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkCounts(t, cv, ref)
	if reads[0] == 0 {
		t.Error("reader did not read")
	}
}

// TestRebuildNewGeneration: a rebuild (here at a version change) fills a
// new generation while the old one serves, switches readers, and deletes
// the old generation's keys.
func TestRebuildNewGeneration(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "rebuild")
	cv := newCounter(ns)
	st := store.NewMemory()
	ref := model{}
	rng := rand.New(rand.NewPCG(5, 6))
	head := appendEvents(t, st, rng, 200, 5, ref)
	p := cv.projector(redisstore.WithVersion(1))
	r := startRunner(t, st, p, projection.WithVersion(1))
	waitFor(t, r, "rebuild", head)
	r.Close()
	p.Close()

	// Version 2 doubles every counter: the runner rebuilds at Start.
	cv2 := newCounter(ns)
	cv2.factor = 2
	p2 := cv2.projector(redisstore.WithVersion(2), redisstore.WithShadowChunk(50))
	t.Cleanup(func() { p2.Close() })
	r2 := startRunner(t, st, p2, projection.WithVersion(2))
	head = appendEvents(t, st, rng, 50, 5, ref)
	waitFor(t, r2, "rebuild", head)
	doubled := model{}
	for k, v := range ref {
		doubled[k] = 2 * v
	}
	checkCounts(t, cv2, doubled)
	if g, err := ns.Generation(context.Background()); err != nil || g != 2 {
		t.Errorf("generation %d, %v; want 2", g, err)
	}
	if cp, err := p2.LoadCheckpoint(context.Background()); err != nil || cp != (projection.Checkpoint{Position: head, Version: 2}) {
		t.Errorf("checkpoint %+v, %v", cp, err)
	}
	// The old generation is deleted in the background.
	p2.Close()
	keys, err := c.Keys(context.Background(), ns.Prefix()+":rebuild:g1:*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("keys of generation 1 left: %v, %v", keys, err)
	}
	// A second rebuild, through the runner's API, with readers reading:
	// no event comes in, so every read must see the complete view (the
	// old generation, then the new one), never the shadow half-built.
	keys = keys[:0]
	for k := range doubled {
		keys = append(keys, k)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads int
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, found, err := cv2.counts.GetMany(context.Background(), keys)
			if err != nil {
				t.Error(err)
				return
			}
			for i, k := range keys {
				if !found[i] || got[i] != doubled[k] {
					t.Errorf("during the rebuild counter %s = %d, want %d", k, got[i], doubled[k])
					return
				}
			}
			reads++
		}
	})
	err = r2.Rebuild(context.Background(), "rebuild")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if reads == 0 {
		t.Error("no read during the rebuild")
	}
	checkCounts(t, cv2, doubled)
	if g, _ := ns.Generation(context.Background()); g != 3 {
		t.Errorf("generation after the second rebuild %d, want 3", g)
	}
	// The old generations are deleted in the background, and Close
	// cancels that work: wait for it first.
	deadline := time.Now().Add(5 * time.Second)
	for {
		keys, err = c.Keys(context.Background(), ns.Prefix()+":rebuild:g[12]:*").Result()
		if err == nil && len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("keys of generations 1 and 2 left 5s after the rebuild: %v, %v", keys, err)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p2.Close()
}
