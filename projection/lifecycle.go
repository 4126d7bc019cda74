package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/internal/notify"
	"github.com/cqrskit/cqrs/store"
)

// Runner feeds projectors from the log, inline or asynchronously, from
// durable checkpoints; see the package documentation.
type Runner struct {
	events store.Log // the event log the projectors follow
	cps    CheckpointStore
	parks  ParkStore // cps, when it keeps dead letters durably
	logger *slog.Logger
	batch  int
	contig bool

	leases Leaser // WithLeases; nil: every projector is local
	owner  string
	ttl    time.Duration
	groups []*group // partitioned leased projectors, for balancing
	names  map[string]bool

	closeTimeout  time.Duration
	handlerCancel context.CancelFunc // cancels the async handlers' context
	closeErr      error
	// runCtx and handlerCtx are the async goroutines' contexts, set by
	// Start before ready, for the background catch-up of inline
	// projectors (catchUpLater).
	runCtx, handlerCtx context.Context

	mu          sync.Mutex // guards the fields below and wg.Add
	projs       map[string]*proj
	order       []*proj // immutable once startCalled
	inline      []*proj
	startCalled bool
	cancel      context.CancelFunc // stops the async projectors
	unhook      func() bool        // detaches cancel from Start's ctx

	ready     atomic.Bool // checkpoints are loaded: delivery may begin
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var _ interface {
	Sync(context.Context, event.Position) error
} = (*Runner)(nil)

// endOfLog as the target position means "whatever the log has now".
const endOfLog = ^event.Position(0)

// NewRunner returns a runner that feeds its projectors from events.
func NewRunner(events store.Log, opts ...Option) *Runner {
	r := &Runner{events: events, batch: 256, projs: make(map[string]*proj), closeTimeout: 10 * time.Second}
	for _, o := range opts {
		o(r)
	}
	if r.cps == nil {
		if fc, ok := r.leases.(FencedCheckpoints); ok {
			r.cps = fc
		} else {
			r.cps = &MemoryCheckpoints{}
		}
	}
	r.parks, _ = r.cps.(ParkStore)
	if c, ok := events.(store.Contiguous); ok {
		r.contig = c.Contiguous()
	}
	return r
}

type proj struct {
	r       *Runner
	p       Projector
	name    string
	cfg     config
	version int
	selfCP  SelfCheckpointer
	batch   BatchHandler // p, if it takes batches
	mu      ctxMutex     // held by whoever delivers events to p
	pos     atomic.Uint64
	stopped atomic.Pointer[StoppedError]
	exited  atomic.Bool // the async goroutine has returned
	// unavailable mirrors health.infraErr != nil, so that the delivery
	// path can clear a recovered outage without taking the health lock.
	unavailable atomic.Bool
	buf         []event.Record
	notify      notify.Broadcast // position advanced, or the projector stopped or exited
	// lagging is the highest position an inline Sync gave up on; catching
	// is set while a background goroutine brings the projector up to it.
	lagging  atomic.Uint64
	catching atomic.Bool
	resume   chan struct{} // wakes a stopped async goroutine

	lease *leaseState // nil unless leased (WithLeases)
	part  *Partition  // nil unless one partition of a partitioned projector
	group *group      // the balancing of a leased partition; else nil

	// health is what Status reports beyond the position, guarded by its
	// own mutex (pj.mu is held for whole batches).
	health struct {
		sync.Mutex
		saveErr    error
		infraErr   error // the infrastructure failure being retried
		rebuilding bool
		parked     []DeadLetter
	}
}

// Add registers p. Call it before Start. Names must be unique.
//
// With leases (WithLeases), an async projector that is not Local is
// leased; a partitioned one (WithPartitions) is added as one projector per
// partition, named PartitionName(p.Name(), i, n).
//
// Errors: ErrUnfencedCheckpoints (wrapped) for a leased projector that
// does not keep its own checkpoint when the checkpoint store is not a
// FencedCheckpoints; plain errors for misuse: Add after Start, a name
// added twice, WithVersion for a projector that is not a Rebuilder,
// WithPartitions for an inline projector.
func (r *Runner) Add(p Projector, opts ...AddOption) error {
	c := config{attempts: 3, backoff: DefaultBackoff, classify: IsInfrastructure}
	for _, o := range opts {
		o(&c)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.startCalled || r.closed.Load() {
		return errors.New("projection: Add after Start")
	}
	name := p.Name()
	if r.names[name] {
		return fmt.Errorf("projection: projector %q added twice", name)
	}
	if _, ok := p.(Rebuilder); c.versionSet && !ok {
		return fmt.Errorf("projection: WithVersion(%d) for %s, which does not implement projection.Rebuilder and so cannot be rebuilt", c.version, name)
	}
	selfCP, _ := p.(SelfCheckpointer)
	leased := r.leases != nil && c.mode == Async && !c.local
	if leased && selfCP == nil {
		if _, ok := r.cps.(FencedCheckpoints); !ok {
			return fmt.Errorf("%w: projector %s, checkpoint store %T", ErrUnfencedCheckpoints, name, r.cps)
		}
	}
	n := c.partitions
	if n > 1 && c.mode != Async {
		return fmt.Errorf("projection: WithPartitions(%d) for %s, which is inline: only async projectors can be partitioned", n, name)
	}
	var g *group
	if n > 1 && leased {
		g = &group{name: name, prefix: name + "/members/", n: n}
		g.share.Store(int32(n))
		r.groups = append(r.groups, g)
	}
	names := []string{name}
	if n > 1 {
		names = names[:0]
		for i := range n {
			names = append(names, PartitionName(name, i, n))
		}
	}
	for _, pn := range names {
		if _, dup := r.projs[pn]; dup {
			return fmt.Errorf("projection: projector %q added twice", pn)
		}
	}
	if r.names == nil {
		r.names = make(map[string]bool)
	}
	r.names[name] = true
	for i, pn := range names {
		pj := &proj{r: r, p: p, name: pn, cfg: c, buf: make([]event.Record, 0, r.batch), resume: make(chan struct{}, 1), mu: newCtxMutex()}
		pj.version = c.version
		pj.selfCP = selfCP
		pj.batch, _ = p.(BatchHandler)
		if leased {
			pj.lease = &leaseState{held: Lease{}, holder: Lease{Name: pn}}
			pj.group = g
		}
		if n > 1 {
			pj.part = &Partition{Index: i, Count: n, Name: pn}
			if _, ok := r.events.(PartitionReader); ok {
				// The other partitions' records come undecoded and cost
				// little, so read up to n batches at a time: a batch then
				// holds about r.batch records of the partition's own (and
				// a BatchFlusher writes them in one go), not r.batch/n.
				pj.buf = make([]event.Record, 0, max(r.batch, min(r.batch*n, maxPartitionRead)))
			}
		}
		r.projs[pn] = pj
		r.order = append(r.order, pj)
		if c.mode == Inline {
			r.inline = append(r.inline, pj)
		}
	}
	return nil
}

// Start loads checkpoints, rebuilds projectors whose WithVersion changed, brings
// inline projectors up to the log head, and starts the async ones. The async
// projectors stop when ctx is done or on Close. Sync returns an error
// until the checkpoints are loaded. Call Close after Start, even when it
// fails.
//
// Errors: a checkpoint load error (wrapped: the store's sentinels stay
// reachable); a plain error when a checkpoint was saved at another version
// by a projector that is not a Rebuilder; the error of a rebuild at start-up
// (the runner then stays unstarted: Ready, Sync and dispatches refuse); a
// *StoppedError when an inline projector fails during catch-up (the runner
// still starts; see Status); [store.ErrClosed] after Close; a plain error
// when called twice.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		return store.ErrClosed
	}
	if r.startCalled {
		r.mu.Unlock()
		return errors.New("projection: runner started twice")
	}
	r.startCalled = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	// No watcher goroutine: the cancel runs only if ctx ends.
	r.unhook = context.AfterFunc(ctx, cancel)
	// Async handlers run with a context that only Close's timeout cancels,
	// so the event in hand finishes on a normal stop.
	handlerCtx, handlerCancel := context.WithCancel(context.WithoutCancel(ctx))
	r.handlerCancel = handlerCancel
	r.runCtx, r.handlerCtx = runCtx, handlerCtx
	order := r.order
	r.mu.Unlock()

	var rebuild []*proj
	for _, pj := range order {
		if pj.lease != nil {
			// Loaded by whichever runner acquires the lease.
			continue
		}
		cp, err := pj.loadCheckpoint(ctx)
		if err != nil {
			return fmt.Errorf("projection: load checkpoint of %s: %w", pj.name, err)
		}
		pj.pos.Store(uint64(cp.Position))
		if r.parks != nil {
			if err := r.loadParked(ctx, pj); err != nil {
				return fmt.Errorf("projection: load dead letters of %s: %w", pj.name, err)
			}
		}
		if cp.Position > 0 && cp.Version != pj.version {
			if _, ok := pj.p.(Rebuilder); !ok {
				return fmt.Errorf("%w: %s changed version %d -> %d and must be rebuilt", errNotRebuildable, pj.name, cp.Version, pj.version)
			}
			rebuild = append(rebuild, pj)
		}
	}
	for _, pj := range rebuild {
		if err := r.rebuild(ctx, pj); err != nil {
			// The runner stays unstarted: Ready refuses dispatches and
			// no checkpoint is saved at the new version over the old view.
			return err
		}
	}
	r.ready.Store(true)
	var firstErr error
	for _, pj := range r.inline {
		pj.mu.Lock()
		err := pj.deliver(ctx, detach(ctx), endOfLog)
		pj.mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return store.ErrClosed
	}
	for _, g := range r.groups {
		// Join before the partitions start, so the first share already
		// counts this runner among the live ones.
		r.refreshGroup(ctx, g)
		r.wg.Add(1)
		go r.balance(runCtx, g)
	}
	for _, pj := range order {
		switch {
		case pj.cfg.mode != Async:
		case pj.lease != nil:
			r.wg.Add(1)
			go pj.followLeased(runCtx, handlerCtx)
		default:
			r.wg.Add(1)
			go pj.follow(runCtx, pj.ctxFor(handlerCtx))
		}
	}
	return firstErr
}

// Close stops the async projectors gracefully: each finishes the event in
// hand and saves its checkpoint. It waits for them up to the close timeout
// (WithCloseTimeout); then it cancels the contexts of the handlers still
// running and returns an error naming their projectors, without waiting
// further. Later calls to Sync, WaitFor, Resume and Rebuild return [store.ErrClosed]
// (WaitFor wrapped in a *NotReachedError); a Rebuild in progress gives up
// without swapping. Concurrent and later calls wait for the first and
// return its result.
func (r *Runner) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed.Store(true)
		cancel, unhook, handlerCancel := r.cancel, r.unhook, r.handlerCancel
		order := r.order
		r.mu.Unlock()
		if unhook != nil {
			unhook()
		}
		if cancel != nil {
			cancel()
		}
		done := make(chan struct{})
		go func() {
			r.wg.Wait()
			close(done)
		}()
		t := time.NewTimer(r.closeTimeout)
		select {
		case <-done:
		case <-t.C:
			if handlerCancel != nil {
				handlerCancel()
			}
			// A handler that honours its context returns now.
			select {
			case <-done:
			case <-time.After(50 * time.Millisecond):
				var stuck []string
				for _, pj := range order {
					if pj.cfg.mode == Async && !pj.exited.Load() {
						stuck = append(stuck, pj.name)
					}
				}
				r.closeErr = fmt.Errorf("projection: Close: %s did not stop within %v; handler contexts cancelled", strings.Join(stuck, ", "), r.closeTimeout)
			}
		}
		t.Stop()
		if handlerCancel != nil {
			handlerCancel()
		}
		for _, pj := range order {
			pj.notify.Publish()
		}
	})
	return r.closeErr
}

// Ready reports whether Sync can run: nil once Start has loaded the
// checkpoints, a plain error before, [store.ErrClosed] after Close. command.Bus asks
// it before committing, so a command dispatched before Start is refused
// instead of committed without its inline projections.
func (r *Runner) Ready() error {
	if r.closed.Load() {
		return store.ErrClosed
	}
	if !r.ready.Load() {
		return errNotStarted
	}
	return nil
}

func (r *Runner) get(name string) (*proj, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pj, ok := r.projs[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownProjector, name)
	}
	return pj, nil
}

// ctxMutex is a mutex whose Lock can give up when a context ends.
type ctxMutex struct{ ch chan struct{} }

func newCtxMutex() ctxMutex { return ctxMutex{ch: make(chan struct{}, 1)} }

func (m ctxMutex) Lock() { m.ch <- struct{}{} }

func (m ctxMutex) Unlock() { <-m.ch }

// LockCtx locks m, or returns ctx.Err() if ctx ends first.
func (m ctxMutex) LockCtx(ctx context.Context) error {
	select {
	case m.ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
