package projection_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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

// added is the test event: add N to the stream's part.
type added struct{ N int }

func (added) EventType() string { return "test.added" }

var errFault = errors.New("injected fault")

// sumState is one read model of sumView: a part per stream and their total.
// Its invariant, total == sum of parts and count == len(applied), holds
// whenever the lock is free.
type sumState struct {
	mu      sync.RWMutex
	parts   map[string]int
	total   int
	count   int
	applied []event.Position
}

func newSumState() *sumState { return &sumState{parts: map[string]int{}} }

// sumView is the test projector: a Rebuilder whose live read model is
// behind an atomic pointer. It can be told to fail (or panic) on one
// position, and records every position it applied.
type sumView struct {
	name    string
	factor  int // multiplies N; a "logic change"
	cur     atomic.Pointer[sumState]
	failAt  atomic.Uint64 // position to fail on; 0: none
	panics  atomic.Bool   // fail by panicking instead of returning errFault
	tries   atomic.Int64  // calls on failAt
	shadows atomic.Int64  // Shadow calls
	gate    chan struct{} // when set, Handle waits on it at gateAt
	gateAt  event.Position
	onApply func(event.Record) // called after each live apply, if set
}

func newSumView(name string) *sumView {
	v := &sumView{name: name, factor: 1}
	v.cur.Store(newSumState())
	return v
}

func (v *sumView) Name() string { return v.name }

func (v *sumView) Handle(ctx context.Context, rec event.Record) error {
	if err := v.apply(v.cur.Load(), rec); err != nil {
		return err
	}
	if v.onApply != nil {
		v.onApply(rec)
	}
	return nil
}

func (v *sumView) apply(s *sumState, rec event.Record) error {
	if v.gate != nil && rec.Position == v.gateAt {
		<-v.gate
	}
	if p := v.failAt.Load(); p != 0 && event.Position(p) == rec.Position {
		v.tries.Add(1)
		if v.panics.Load() {
			panic(fmt.Sprintf("panic at %v", rec.Position))
		}
		return fmt.Errorf("at %v: %w", rec.Position, errFault)
	}
	a, ok := rec.Data.(added)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts[rec.Stream] += a.N * v.factor
	s.total += a.N * v.factor
	s.count++
	s.applied = append(s.applied, rec.Position)
	return nil
}

func (v *sumView) Shadow(context.Context) (projection.Shadow, error) {
	v.shadows.Add(1)
	s := newSumState()
	return projection.Shadow{
		Handler: event.HandlerFunc(func(_ context.Context, rec event.Record) error { return v.apply(s, rec) }),
		Swap:    func() { v.cur.Store(s) },
	}, nil
}

func (v *sumView) Total() int {
	s := v.cur.Load()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.total
}

func (v *sumView) Count() int {
	s := v.cur.Load()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.count
}

func (v *sumView) Parts() map[string]int {
	s := v.cur.Load()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.parts)
}

func (v *sumView) Applied() []event.Position {
	s := v.cur.Load()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.applied)
}

// check verifies that positions were applied at most once and in order.
func (v *sumView) checkApplied(t *testing.T) {
	t.Helper()
	a := v.Applied()
	for i := 1; i < len(a); i++ {
		require.Greater(t, a[i], a[i-1], "%s: position applied out of order or twice", v.name)
	}
}

// plain is a projector that cannot be rebuilt.
type plain struct {
	n atomic.Int64
}

func (p *plain) Name() string { return "plain" }
func (p *plain) Handle(context.Context, event.Record) error {
	p.n.Add(1)
	return nil
}

func newMemory(t testing.TB, opts ...store.MemoryOption) *store.Memory {
	t.Helper()
	st := store.NewMemory(opts...)
	t.Cleanup(func() { st.Close() })
	return st
}

// streamOf spreads events over a few streams.
func streamOf(i int) string { return fmt.Sprintf("s/%d", i%7) }

// appendN commits n added events (N = 1, 2, 3... continuing from the head)
// in units of work of up to batch events, and returns the new head.
func appendN(t testing.TB, st *store.Memory, n, batch int) event.Position {
	t.Helper()
	ctx := context.Background()
	head, _ := st.Head(ctx)
	var pos event.Position
	for done := 0; done < n; {
		k := min(batch, n-done)
		p, err := st.Update(ctx, func(tx store.Tx) error {
			for j := range k {
				i := int(head) + done + j + 1
				tx.Record(streamOf(i), added{N: i})
			}
			return nil
		})
		require.NoError(t, err, "append")
		done += k
		pos = p
	}
	return pos
}

// sumTo is the total of added{N: 1..n} (factor 1).
func sumTo(n int) int { return n * (n + 1) / 2 }

// partsTo is the expected parts after added{N: 1..n}.
func partsTo(n, factor int) map[string]int {
	m := map[string]int{}
	for i := 1; i <= n; i++ {
		m[streamOf(i)] += i * factor
	}
	return m
}

// fast is a retry setting for tests: attempts tries, no pause.
func fast(attempts int) projection.AddOption { return projection.WithRetry(attempts, nil) }

func start(t *testing.T, r *projection.Runner) {
	t.Helper()
	require.NoError(t, r.Start(context.Background()), "Start")
	t.Cleanup(func() { r.Close() })
}

func add(t *testing.T, r *projection.Runner, p projection.Projector, opts ...projection.AddOption) {
	t.Helper()
	require.NoError(t, r.Add(p, opts...), "Add(%s)", p.Name())
}

func waitFor(t *testing.T, r *projection.Runner, name string, pos event.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, r.WaitFor(ctx, name, pos), "WaitFor(%q, %v)", name, pos)
}

func statusOf(t *testing.T, r *projection.Runner, name string) projection.Status {
	t.Helper()
	s, err := r.StatusOf(context.Background(), name)
	require.NoError(t, err, "StatusOf(%s)", name)
	return s
}

// settled waits until every goroutine of the test's synctest bubble is
// blocked, then requires cond: the state is reached without polling.
func settled(t *testing.T, what string, cond func() bool) {
	t.Helper()
	synctest.Wait()
	require.True(t, cond(), "not %s once everything settled", what)
}
