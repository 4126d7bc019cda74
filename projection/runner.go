package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Mode says how a projector is fed.
type Mode int

const (
	// Inline projectors are brought up to each command's position inside
	// Dispatch (through Runner.Sync), so a read after Dispatch returns sees
	// the write.
	Inline Mode = iota
	// Async projectors follow the log on their own goroutine, woken by
	// commits; queries use WaitFor for read-your-writes.
	Async
)

func (m Mode) String() string {
	if m == Async {
		return "async"
	}
	return "inline"
}

// Policy decides what happens to an event whose retries are exhausted.
type Policy int

const (
	// Stop halts the projector at the failing event (the default). It
	// reports the error and position in Status and resumes from that same
	// event after Resume. Other projectors go on.
	Stop Policy = iota
	// Park moves the failing event to the projector's dead-letter list
	// (see Runner.Parked and Runner.Replay) and goes on with the next one.
	Park
)

func (p Policy) String() string {
	if p == Park {
		return "park"
	}
	return "stop"
}

// State is a projector's lifecycle state as reported by Status.
type State int

const (
	// Idle: added, runner not started.
	Idle State = iota
	// Running: caught up with the log head (or following it).
	Running
	// CatchingUp: behind the head and applying events.
	CatchingUp
	// Rebuilding: a shadow read model is being built by Rebuild.
	Rebuilding
	// Stopped: halted on an error; see Status.Err.
	Stopped
	// Closed: the runner was closed.
	Closed
	// Unavailable: the projector is retrying an infrastructure failure
	// (see WithClassifier); Status.Err holds the latest cause. Delivery
	// resumes by itself once the store answers.
	Unavailable
)

var stateNames = [...]string{"idle", "running", "catching up", "rebuilding", "stopped", "closed", "unavailable"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Option configures a Runner.
type Option func(*Runner)

// WithCheckpoints sets where checkpoints are saved (default: a new
// MemoryCheckpoints).
func WithCheckpoints(cs CheckpointStore) Option { return func(r *Runner) { r.cps = cs } }

// WithLogger sets the logger for failures, parks and rebuilds. Nothing is
// logged on the per-event path. Default: no logging.
func WithLogger(l *slog.Logger) Option { return func(r *Runner) { r.log = l } }

// WithBatchSize sets how many records a projector reads from the log at a
// time and applies between checkpoint saves (default 256).
func WithBatchSize(n int) Option {
	return func(r *Runner) {
		if n > 0 {
			r.batch = n
		}
	}
}

// WithCloseTimeout bounds Close (default 10s): after d it cancels the
// contexts of the handlers still running and returns an error naming their
// projectors, without waiting for them any longer.
func WithCloseTimeout(d time.Duration) Option {
	return func(r *Runner) {
		if d > 0 {
			r.closeTimeout = d
		}
	}
}

// AddOption configures one projector in Runner.Add.
type AddOption func(*config)

type config struct {
	mode     Mode
	policy   Policy
	attempts int
	backoff  func(n int) time.Duration
	classify func(error) bool
}

// WithClassifier sets how the projector's errors are told apart: an error
// for which infrastructure returns true is a failure of the infrastructure
// (a database or broker that is down), retried indefinitely with capped
// backoff (InfraBackoff) in state Unavailable, without counting as an
// attempt and never triggering the Stop or Park policy. Other errors are
// failures of the event. The default is IsInfrastructure.
func WithClassifier(infrastructure func(err error) bool) AddOption {
	return func(c *config) {
		if infrastructure != nil {
			c.classify = infrastructure
		}
	}
}

// IsInfrastructure is the default classifier: errors matching
// store.ErrUnavailable.
func IsInfrastructure(err error) bool { return errors.Is(err, store.ErrUnavailable) }

// InfraBackoff is the pause before retry n (n >= 1) of an infrastructure
// failure: 10ms doubling up to 2s.
func InfraBackoff(n int) time.Duration {
	d := 10 * time.Millisecond << min(max(n-1, 0), 8)
	return min(d, 2*time.Second)
}

// AsAsync feeds the projector asynchronously from the log instead of inline.
func AsAsync() AddOption { return func(c *config) { c.mode = Async } }

// WithPolicy sets the failure policy (default Stop).
func WithPolicy(p Policy) AddOption { return func(c *config) { c.policy = p } }

// WithRetry sets how often an event is tried before the policy applies
// (attempts >= 1, default 3) and the pause before try n+1 (default
// exponential from 10ms, capped at 1s; nil means no pause).
func WithRetry(attempts int, backoff func(n int) time.Duration) AddOption {
	return func(c *config) {
		if attempts < 1 {
			attempts = 1
		}
		c.attempts, c.backoff = attempts, backoff
	}
}

// DefaultBackoff doubles from 10ms up to 1s.
func DefaultBackoff(n int) time.Duration {
	d := 10 * time.Millisecond << min(n-1, 7)
	return min(d, time.Second)
}

// Status is a projector's progress and health.
type Status struct {
	Name       string
	Mode       Mode
	Policy     Policy
	State      State
	Checkpoint event.Position // last applied position
	// Head is the newest committed position the runner knows of; on a
	// held-back log (see HeldBack) it may be above what can be read yet.
	Head event.Position
	// Behind is the number of events after Checkpoint up to Head. Logs
	// with holes in their positions count them through the optional
	// store.EventCounter capability (at most 1<<20: more shows as 1<<20);
	// without it, it is Head - Checkpoint.
	Behind uint64
	// HeldBack is set when the log reports that committed records are not
	// readable yet (store.HorizonReporter) and the projector has applied
	// everything readable: it names what holds the log back.
	HeldBack *store.HeldBack
	// TimeBehind is the commit time of the head record minus that of the
	// last applied one (of the first record when none is applied yet): how
	// old the view is compared with the log. Zero when caught up.
	TimeBehind time.Duration
	// Err says why it is stopped (a *StoppedError), or the infrastructure
	// failure it is retrying (state Unavailable), or the last checkpoint
	// save error.
	Err     error
	Parked  int // events in the dead-letter list
	Version int
}

// Parked is an event that exhausted its retries under policy Park.
type Parked struct {
	Record   event.Record
	Err      error
	Attempts int
	At       time.Time
}

// Runner feeds projectors from the log, inline or asynchronously, from
// durable checkpoints; see the package documentation.
type Runner struct {
	lg     store.Log
	cps    CheckpointStore
	parks  ParkStore // cps, when it keeps dead letters durably
	log    *slog.Logger
	batch  int
	contig bool

	closeTimeout time.Duration
	hcancel      context.CancelFunc // cancels the async handlers' context
	closeErr     error

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

// NewRunner returns a runner reading lg.
func NewRunner(lg store.Log, opts ...Option) *Runner {
	r := &Runner{lg: lg, batch: 256, projs: make(map[string]*proj), closeTimeout: 10 * time.Second}
	for _, o := range opts {
		o(r)
	}
	if r.cps == nil {
		r.cps = &MemoryCheckpoints{}
	}
	r.parks, _ = r.cps.(ParkStore)
	if c, ok := lg.(store.Contiguous); ok {
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
	mu      ctxMutex // held by whoever delivers events to p
	pos     atomic.Uint64
	stopped atomic.Pointer[StoppedError]
	exited  atomic.Bool // the async goroutine has returned
	buf     []event.Record
	notify  broadcast     // position advanced, or the projector stopped or exited
	resume  chan struct{} // wakes a stopped async goroutine

	st struct {
		sync.Mutex
		saveErr    error
		infraErr   error // the infrastructure failure being retried
		rebuilding bool
		parked     []Parked
	}
}

// Add registers p. Call it before Start. Names must be unique.
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
	if _, dup := r.projs[name]; dup {
		return fmt.Errorf("projection: projector %q added twice", name)
	}
	pj := &proj{r: r, p: p, name: name, cfg: c, buf: make([]event.Record, 0, r.batch), resume: make(chan struct{}, 1), mu: newCtxMutex()}
	if v, ok := p.(Versioned); ok {
		pj.version = v.Version()
	}
	pj.selfCP, _ = p.(SelfCheckpointer)
	r.projs[name] = pj
	r.order = append(r.order, pj)
	if c.mode == Inline {
		r.inline = append(r.inline, pj)
	}
	return nil
}

// Start loads checkpoints, rebuilds projectors whose Version changed, brings
// inline projectors up to the log head, and starts the async ones. The async
// projectors stop when ctx is done or on Close. Sync returns ErrNotStarted
// until the checkpoints are loaded. Call Close after Start, even when it
// fails.
//
// Errors: a checkpoint load error; ErrNotRebuildable when a projector that
// is not a Rebuilder changed version; the error of a rebuild at start-up; a
// *StoppedError when an inline projector fails during catch-up (the runner
// still starts; see Status); ErrClosed.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		return ErrClosed
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
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	r.hcancel = hcancel
	order := r.order
	r.mu.Unlock()

	var rebuild []*proj
	for _, pj := range order {
		var cp Checkpoint
		var err error
		if pj.selfCP != nil {
			cp, err = pj.selfCP.LoadCheckpoint(ctx)
		} else {
			cp, err = r.cps.Load(ctx, pj.name)
		}
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
				return fmt.Errorf("%w: %s changed version %d -> %d and must be rebuilt", ErrNotRebuildable, pj.name, cp.Version, pj.version)
			}
			rebuild = append(rebuild, pj)
		}
	}
	r.ready.Store(true)
	for _, pj := range rebuild {
		if err := r.rebuild(ctx, pj); err != nil {
			return err
		}
	}
	var firstErr error
	for _, pj := range r.inline {
		pj.mu.Lock()
		err := pj.deliver(ctx, detach(ctx), ^event.Position(0))
		pj.mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return ErrClosed
	}
	for _, pj := range order {
		if pj.cfg.mode == Async {
			r.wg.Add(1)
			go pj.follow(runCtx, hctx)
		}
	}
	return firstErr
}

// Close stops the async projectors gracefully: each finishes the event in
// hand and saves its checkpoint. It waits for them up to the close timeout
// (WithCloseTimeout); then it cancels the contexts of the handlers still
// running and returns an error naming their projectors, without waiting
// further. Later calls to Sync, WaitFor, Resume and Rebuild return ErrClosed
// (WaitFor wrapped in a *NotReachedError); a Rebuild in progress gives up
// without swapping. Concurrent and later calls wait for the first and
// return its result.
func (r *Runner) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed.Store(true)
		cancel, unhook, hcancel := r.cancel, r.unhook, r.hcancel
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
			if hcancel != nil {
				hcancel()
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
		if hcancel != nil {
			hcancel()
		}
		for _, pj := range order {
			pj.notify.publish()
		}
	})
	return r.closeErr
}

// Ready reports whether Sync can run: nil once Start has loaded the
// checkpoints, ErrNotStarted before, ErrClosed after Close. command.Bus asks
// it before committing, so a command dispatched before Start is refused
// instead of committed without its inline projections.
func (r *Runner) Ready() error {
	if r.closed.Load() {
		return ErrClosed
	}
	if !r.ready.Load() {
		return ErrNotStarted
	}
	return nil
}

// Sync brings every inline projector up to at least pos. command.Bus calls
// it after each commit (command.WithSyncer). Concurrent Syncs are safe: each
// projector applies events in log order whoever delivers them.
//
// Every blocking step honours ctx, including waiting for another caller
// that is delivering to the same projector. When the log is held back below
// pos (store.HorizonReporter) for longer than a short grace period, Sync
// returns early with a *store.HeldBackError instead of waiting for ctx.
//
// Errors: *StoppedError for a stopped inline projector (the event stays
// unapplied until Resume); *store.HeldBackError (matching
// store.ErrUnavailable); a log error; ctx.Err(); ErrNotStarted; ErrClosed.
func (r *Runner) Sync(ctx context.Context, pos event.Position) error {
	if !r.ready.Load() {
		return ErrNotStarted
	}
	if r.closed.Load() {
		return ErrClosed
	}
	var errs []error
	var hctx context.Context
	for _, pj := range r.inline {
		if event.Position(pj.pos.Load()) >= pos {
			continue
		}
		if hctx == nil {
			hctx = detach(ctx)
		}
		if err := pj.mu.LockCtx(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		err := pj.deliver(ctx, hctx, pos)
		pj.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WaitFor blocks until the projector called name (every projector when name
// is "") has applied pos, and returns nil as soon as it has. An inline
// projector is first brought up to the log head, which covers positions
// committed without going through Sync.
//
// Errors: ErrUnknownProjector; when ctx ends first, or the runner is closed,
// a *NotReachedError (ErrNotReached) that also unwraps to ctx's error (or
// ErrClosed) and, for a stopped projector, to its *StoppedError.
func (r *Runner) WaitFor(ctx context.Context, name string, pos event.Position) error {
	if name != "" {
		pj, err := r.get(name)
		if err != nil {
			return err
		}
		return pj.waitFor(ctx, pos)
	}
	r.mu.Lock()
	order := r.order
	r.mu.Unlock()
	for _, pj := range order {
		if err := pj.waitFor(ctx, pos); err != nil {
			return err
		}
	}
	return nil
}

func (pj *proj) waitFor(ctx context.Context, pos event.Position) error {
	if event.Position(pj.pos.Load()) >= pos {
		return nil
	}
	r := pj.r
	if pj.cfg.mode == Inline && r.ready.Load() && !r.closed.Load() && pj.stopped.Load() == nil {
		// Inline projectors only move on Sync; deliver what the log has.
		if err := pj.mu.LockCtx(ctx); err != nil {
			return pj.notReached(ctx, pos, err)
		}
		_ = pj.deliver(ctx, detach(ctx), ^event.Position(0))
		pj.mu.Unlock()
	}
	for {
		if event.Position(pj.pos.Load()) >= pos {
			return nil
		}
		ch := pj.notify.wait()
		if event.Position(pj.pos.Load()) >= pos {
			return nil
		}
		if r.closed.Load() || pj.exited.Load() {
			return pj.notReached(ctx, pos, ErrClosed)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return pj.notReached(ctx, pos, ctx.Err())
		}
	}
}

func (pj *proj) notReached(ctx context.Context, want event.Position, err error) error {
	reached := pj.pos.Load()
	e := &NotReachedError{Projector: pj.name, Want: want, Reached: event.Position(reached), Err: err}
	if se := pj.stopped.Load(); se != nil {
		e.Cause = se
	} else if ie := pj.infraErr(); ie != nil {
		e.Cause = ie
	}
	head, hb := pj.r.probe(ctx)
	if e.Cause == nil && hb != nil && hb.Readable < want && event.Position(reached) >= hb.Readable {
		e.Cause = &store.HeldBackError{HeldBack: *hb}
	}
	e.State = pj.state(reached, head)
	return e
}

// probeTimeout bounds the look at the log that WaitFor takes after its
// context ended, to describe why the position was not reached.
const probeTimeout = 100 * time.Millisecond

// probe reads the log head and, when the log reports it, what holds it
// back, giving up after probeTimeout even if the log ignores its context
// (a frozen server): it then returns what it knows, possibly nothing.
func (r *Runner) probe(ctx context.Context) (event.Position, *store.HeldBack) {
	type result struct {
		head event.Position
		hb   *store.HeldBack
	}
	ch := make(chan result, 1)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
	defer cancel()
	go func() {
		var res result
		res.head, _ = r.lg.Head(pctx)
		if hr, ok := r.lg.(store.HorizonReporter); ok && pctx.Err() == nil {
			if hb, err := hr.HeldBack(pctx); err == nil && hb != nil {
				res.hb = hb
				res.head = max(res.head, hb.Head)
			}
		}
		ch <- res
	}()
	select {
	case res := <-ch:
		return res.head, res.hb
	case <-pctx.Done():
		return 0, nil
	}
}

// Resume clears a stopped projector's error; it retries the failing event
// at once (inline projectors here, async ones on their goroutine). It does
// nothing to an async projector that is not stopped.
//
// Errors: ErrUnknownProjector; ErrNotStarted; ErrClosed; for an inline
// projector, what Sync returns.
func (r *Runner) Resume(ctx context.Context, name string) error {
	pj, err := r.get(name)
	if err != nil {
		return err
	}
	if r.closed.Load() || pj.exited.Load() {
		return ErrClosed // also when Start's ctx ended
	}
	if !r.ready.Load() {
		return ErrNotStarted
	}
	wasStopped := pj.stopped.Swap(nil) != nil
	if pj.cfg.mode == Async {
		if wasStopped {
			pj.wake()
		}
		return nil
	}
	if err := pj.mu.LockCtx(ctx); err != nil {
		return err
	}
	defer pj.mu.Unlock()
	return pj.deliver(ctx, detach(ctx), ^event.Position(0))
}

// detach returns a context with ctx's values that is never cancelled, for
// handlers, so the event in hand finishes. It allocates only when ctx can be
// cancelled.
func detach(ctx context.Context) context.Context {
	if ctx.Done() == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// wake lets a stopped async goroutine look again.
func (pj *proj) wake() {
	select {
	case pj.resume <- struct{}{}:
	default:
	}
}

// Status reports every projector in the order they were added.
//
// Errors: the log's Head error.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	head, hb, err := r.head(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	order := r.order
	r.mu.Unlock()
	headTime := r.recordTime(ctx, head)
	out := make([]Status, 0, len(order))
	for _, pj := range order {
		out = append(out, pj.status(ctx, head, hb, headTime))
	}
	return out, nil
}

// StatusOf reports one projector.
//
// Errors: ErrUnknownProjector; the log's Head error.
func (r *Runner) StatusOf(ctx context.Context, name string) (Status, error) {
	pj, err := r.get(name)
	if err != nil {
		return Status{}, err
	}
	head, hb, err := r.head(ctx)
	if err != nil {
		return Status{}, err
	}
	return pj.status(ctx, head, hb, r.recordTime(ctx, head)), nil
}

// head returns the newest committed position: the log's Head, or the
// committed head of a held-back log, with what holds it back.
func (r *Runner) head(ctx context.Context) (event.Position, *store.HeldBack, error) {
	head, err := r.lg.Head(ctx)
	if err != nil {
		return 0, nil, err
	}
	if hr, ok := r.lg.(store.HorizonReporter); ok {
		if hb, err := hr.HeldBack(ctx); err == nil && hb != nil && hb.Head > head {
			return hb.Head, hb, nil
		}
	}
	return head, nil, nil
}

// recordTime returns the commit time of the record at pos (or of the newest
// readable record before it), or the zero time.
func (r *Runner) recordTime(ctx context.Context, pos event.Position) time.Time {
	if pos == 0 {
		return time.Time{}
	}
	recs, err := r.lg.Read(ctx, pos-1, make([]event.Record, 0, 1))
	if err != nil || len(recs) == 0 {
		return time.Time{}
	}
	return recs[0].Time
}

// behindLimit caps how many events Status counts on a log with holes.
const behindLimit = 1 << 20

func (pj *proj) status(ctx context.Context, head event.Position, hb *store.HeldBack, headTime time.Time) Status {
	pos := pj.pos.Load()
	s := Status{
		Name: pj.name, Mode: pj.cfg.mode, Policy: pj.cfg.policy, State: pj.state(pos, head),
		Checkpoint: event.Position(pos), Head: head, Version: pj.version,
	}
	if hb != nil && s.Checkpoint >= hb.Readable {
		s.HeldBack = hb
	}
	if head > s.Checkpoint {
		s.Behind = uint64(head - s.Checkpoint)
		if ec, ok := pj.r.lg.(store.EventCounter); ok && !pj.r.contig {
			if n, err := ec.CountEvents(ctx, s.Checkpoint, head, behindLimit); err == nil {
				s.Behind = n
			}
		}
		// The view is as of the last applied record (before the first one
		// when nothing is applied). The time is read from the log rather
		// than cached, so it is right after a restart or a rebuild too.
		if !headTime.IsZero() {
			if t := pj.r.recordTime(ctx, max(s.Checkpoint, 1)); !t.IsZero() {
				s.TimeBehind = max(headTime.Sub(t), 0)
			}
		}
	}
	if se := pj.stopped.Load(); se != nil {
		s.Err = se
	}
	pj.st.Lock()
	if s.Err == nil {
		s.Err = pj.st.infraErr
	}
	if s.Err == nil {
		s.Err = pj.st.saveErr
	}
	s.Parked = len(pj.st.parked)
	pj.st.Unlock()
	return s
}

func (pj *proj) infraErr() error {
	pj.st.Lock()
	defer pj.st.Unlock()
	return pj.st.infraErr
}

func (pj *proj) setInfra(err error) {
	pj.st.Lock()
	pj.st.infraErr = err
	pj.st.Unlock()
}

func (pj *proj) state(pos uint64, head event.Position) State {
	if pj.r.closed.Load() {
		return Closed
	}
	if pj.stopped.Load() != nil {
		return Stopped
	}
	pj.st.Lock()
	rebuilding, unavailable := pj.st.rebuilding, pj.st.infraErr != nil
	pj.st.Unlock()
	switch {
	case rebuilding:
		return Rebuilding
	case unavailable && !pj.exited.Load():
		return Unavailable
	case !pj.r.ready.Load():
		return Idle
	case pj.exited.Load():
		return Closed // Start's ctx ended, or the log was closed
	case uint64(head) > pos:
		return CatchingUp
	}
	return Running
}

// Parked lists the projector's dead-lettered events, oldest first.
//
// Errors: ErrUnknownProjector.
func (r *Runner) Parked(name string) ([]Parked, error) {
	pj, err := r.get(name)
	if err != nil {
		return nil, err
	}
	pj.st.Lock()
	defer pj.st.Unlock()
	return append([]Parked(nil), pj.st.parked...), nil
}

// Replay applies the parked event at pos to the projector again (after the
// fault is fixed) and removes it from the dead-letter list on success. The
// record is read again from the log and applied once, without retries, and
// out of order, after everything that followed it; the projector must
// tolerate that for the events it may park. A projector that keeps its own
// checkpoint (SelfCheckpointer) is already past the event and would skip
// it: it must implement Replayer, or Replay fails with ErrNotReplayable and
// the event stays parked.
//
// Errors: ErrUnknownProjector; ErrNotParked when no event at pos is parked;
// ErrNotReplayable; the log's error reading the record; the projector's
// error (the event stays parked, with that error); ctx.Err() while waiting
// for the projector.
func (r *Runner) Replay(ctx context.Context, name string, pos event.Position) error {
	pj, err := r.get(name)
	if err != nil {
		return err
	}
	// No delivery, hence no park or rebuild swap, meanwhile.
	if err := pj.mu.LockCtx(ctx); err != nil {
		return err
	}
	defer pj.mu.Unlock()
	pj.st.Lock()
	idx := pj.parkedAt(pos)
	pj.st.Unlock()
	if idx < 0 {
		return fmt.Errorf("%w: %s at position %v", ErrNotParked, name, pos)
	}
	herr := r.replayOne(ctx, pj, pos)
	pj.st.Lock()
	defer pj.st.Unlock()
	if idx = pj.parkedAt(pos); idx < 0 {
		return herr
	}
	if herr != nil {
		pj.st.parked[idx].Err = herr
		pj.st.parked[idx].Attempts++
		pj.st.parked[idx].At = time.Now()
		return herr
	}
	if ps := r.parks; ps != nil {
		if err := ps.Unpark(ctx, name, pos); err != nil {
			return fmt.Errorf("projection: %s: replayed position %v but could not unpark it: %w", name, pos, err)
		}
	}
	pj.st.parked = append(pj.st.parked[:idx], pj.st.parked[idx+1:]...)
	return nil
}

// replayOne reads the record at pos from the log and applies it out of
// order. pj.mu must be held.
func (r *Runner) replayOne(ctx context.Context, pj *proj, pos event.Position) error {
	rp, canReplay := pj.p.(Replayer)
	if !canReplay && pj.selfCP != nil {
		return fmt.Errorf("%w: %s keeps its own checkpoint and does not implement projection.Replayer", ErrNotReplayable, pj.name)
	}
	recs, err := r.lg.Read(ctx, pos-1, make([]event.Record, 0, 1))
	if err != nil {
		return err
	}
	if len(recs) == 0 || recs[0].Position != pos {
		return fmt.Errorf("projection: %s: parked position %v is not in the log", pj.name, pos)
	}
	hctx := detach(ctx)
	if canReplay {
		return pj.handle(hctx, event.HandlerFunc(rp.Replay), recs[0])
	}
	return pj.handle(hctx, pj.p, recs[0])
}

func deadLetter(p Parked) DeadLetter {
	msg := ""
	if p.Err != nil {
		msg = p.Err.Error()
	}
	return DeadLetter{Position: p.Record.Position, Err: msg, Attempts: p.Attempts, At: p.At}
}

// loadParked restores a projector's dead letters from the ParkStore,
// reading each record back from the log.
func (r *Runner) loadParked(ctx context.Context, pj *proj) error {
	dls, err := r.parks.LoadParked(ctx, pj.name)
	if err != nil || len(dls) == 0 {
		return err
	}
	list := make([]Parked, 0, len(dls))
	buf := make([]event.Record, 0, 1)
	for _, dl := range dls {
		recs, err := r.lg.Read(ctx, dl.Position-1, buf[:0])
		var re *store.RecordError
		if err != nil && len(recs) == 0 && errors.As(err, &re) && re.Position == dl.Position {
			// Parked because the log cannot return it (an unknown type):
			// keep it listed; Replay reads it again.
			recs, err = append(recs, event.Record{Position: re.Position, Type: re.Type}), nil
		}
		if err != nil {
			return err
		}
		if len(recs) == 0 || recs[0].Position != dl.Position {
			return fmt.Errorf("projection: %s: parked position %v is not in the log", pj.name, dl.Position)
		}
		list = append(list, Parked{Record: recs[0], Err: errors.New(dl.Err), Attempts: dl.Attempts, At: dl.At})
	}
	pj.st.Lock()
	pj.st.parked = list
	pj.st.Unlock()
	return nil
}

// parkedAt returns the index of the parked record at pos, or -1. pj.st must
// be held.
func (pj *proj) parkedAt(pos event.Position) int {
	for i, p := range pj.st.parked {
		if p.Record.Position == pos {
			return i
		}
	}
	return -1
}

func (r *Runner) get(name string) (*proj, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pj, ok := r.projs[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownProjector, name)
	}
	return pj, nil
}

// follow is an async projector's goroutine. It holds pj.mu for one batch at
// a time, so Rebuild, Replay and Resume never wait for a whole catch-up.
// Handlers run with hctx, which Close cancels only after its timeout, so the
// event in hand finishes; the loop checks ctx between events.
func (pj *proj) follow(ctx, hctx context.Context) {
	defer func() {
		pj.exited.Store(true)
		pj.notify.publish()
		pj.r.wg.Done()
	}()
	failures := 0 // consecutive log failures
	for ctx.Err() == nil {
		pj.mu.Lock()
		more, err := pj.step(ctx, hctx, ^event.Position(0))
		pj.mu.Unlock()
		if err == nil && !more {
			err = pj.r.lg.Wait(ctx, event.Position(pj.pos.Load()))
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrStopped):
			failures = 0
			select {
			case <-pj.resume: // Resume or a successful Rebuild
			case <-ctx.Done():
				return
			}
		case errors.Is(err, store.ErrClosed):
			return
		case err != nil:
			// The log failed: the infrastructure, not an event. Retry
			// for as long as it lasts, visibly.
			failures++
			pj.setInfra(err)
			pj.notify.publish()
			if !sleep(ctx, InfraBackoff(failures)) {
				return
			}
		default:
			failures = 0
		}
	}
}

// sleep waits for d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// deliver applies records after pj.pos until it has reached upTo (or, for
// ^0, until the log has nothing more). pj.mu must be held. Handlers run with
// hctx; ctx is checked between events.
func (pj *proj) deliver(ctx, hctx context.Context, upTo event.Position) error {
	for {
		more, err := pj.step(ctx, hctx, upTo)
		if err != nil || !more {
			return err
		}
	}
}

// heldBackGrace is how long Sync waits for a commit to become readable
// before it asks a store.HorizonReporter log whether it is held back.
const heldBackGrace = 500 * time.Millisecond

// step applies one batch of records towards upTo, saves the checkpoint and
// reports whether there may be more to do. pj.mu must be held.
func (pj *proj) step(ctx, hctx context.Context, upTo event.Position) (more bool, err error) {
	if se := pj.stopped.Load(); se != nil {
		return false, se
	}
	pos := event.Position(pj.pos.Load())
	if pos >= upTo {
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	recs, rerr := pj.r.lg.Read(ctx, pos, pj.buf[:0])
	var bad *store.RecordError
	if rerr != nil {
		bad = recordError(rerr)
	}
	if rerr != nil && bad == nil {
		if len(recs) == 0 {
			return false, rerr
		}
	} else if pj.cfg.mode == Async {
		pj.setInfra(nil) // the log answers again
	}
	if len(recs) == 0 && rerr == nil {
		if upTo == ^event.Position(0) {
			return false, nil
		}
		// The commit at upTo is not readable yet (a durable log's
		// horizon is behind it): wait for it rather than return early.
		return true, pj.waitReadable(ctx, pos, upTo)
	}
	applied := pos
	var failed error
	for i := range recs {
		rec := &recs[i]
		if rec.Position <= applied {
			continue // at-least-once delivery: already applied
		}
		if pj.r.contig && rec.Position != applied+1 {
			failed = pj.halt(&GapError{Projector: pj.name, Expected: applied + 1, Got: rec.Position}, applied+1)
			break
		}
		if err := pj.apply(ctx, hctx, rec); err != nil {
			failed = err
			break
		}
		applied = rec.Position
		pj.pos.Store(uint64(applied))
		if err := ctx.Err(); err != nil {
			if applied < upTo {
				failed = err
			}
			break
		}
	}
	clear(recs) // drop payload references held by the reused buffer
	if failed == nil && rerr != nil {
		switch {
		case bad == nil:
			failed = rerr // a log failure after some records
		case bad.Position <= applied:
		case bad.Position > upTo:
			// Nothing readable lies between applied and upTo.
			rerr = nil
		default:
			// The log cannot return this record (say, its type is not
			// registered): a failure of the event, for the policy.
			rec := event.Record{Position: bad.Position, Type: bad.Type}
			if failed = pj.policy(ctx, hctx, &rec, rerr, 1); failed == nil {
				applied = bad.Position
				pj.pos.Store(uint64(applied))
			}
		}
	}
	if applied > pos {
		if err := pj.saveCheckpoint(hctx, applied); err != nil && failed == nil {
			failed = err
		}
		pj.notify.publish()
	}
	if failed == nil && rerr != nil && bad != nil && bad.Position > upTo {
		return false, nil
	}
	return failed == nil, failed
}

// recordError returns the *store.RecordError in err's chain, or nil. (A
// function of its own so that the target escapes only on this slow path.)
func recordError(err error) *store.RecordError {
	var re *store.RecordError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

// waitReadable waits for the log to move past pos on the way to upTo. On a
// log that reports a held-back horizon it gives up after heldBackGrace when
// upTo is held back, with a *store.HeldBackError.
func (pj *proj) waitReadable(ctx context.Context, pos, upTo event.Position) error {
	hr, ok := pj.r.lg.(store.HorizonReporter)
	if !ok {
		return pj.r.lg.Wait(ctx, pos)
	}
	wctx, cancel := context.WithTimeout(ctx, heldBackGrace)
	err := pj.r.lg.Wait(wctx, pos)
	cancel()
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	hb, err := hr.HeldBack(ctx)
	if err != nil {
		return err
	}
	if hb != nil && hb.Readable < upTo {
		return &store.HeldBackError{HeldBack: *hb}
	}
	return nil
}

// apply runs the projector on rec with retries, then applies the policy. It
// returns ctx.Err() when ctx ends during a backoff pause: the record is then
// neither applied nor parked and will be delivered again.
func (pj *proj) apply(ctx, hctx context.Context, rec *event.Record) error {
	interrupted, err := pj.try(ctx, hctx, pj.p, rec)
	if err == nil {
		return nil
	}
	if interrupted {
		if pj.cfg.classify(err) {
			return fmt.Errorf("%w (retrying %w)", ctx.Err(), err)
		}
		return ctx.Err()
	}
	return pj.policy(ctx, hctx, rec, err, pj.cfg.attempts)
}

// policy parks rec or stops the projector at it, after it failed with err.
func (pj *proj) policy(ctx, hctx context.Context, rec *event.Record, err error, attempts int) error {
	if pj.cfg.policy == Park {
		p := Parked{Record: *rec, Err: err, Attempts: attempts, At: time.Now()}
		if ps := pj.r.parks; ps != nil {
			// The dead letter must be durable before the checkpoint moves
			// past the event; if it cannot be, stop instead of losing it.
			if perr := ps.Park(hctx, pj.name, deadLetter(p)); perr != nil {
				return pj.halt(fmt.Errorf("park failed: %w (projector error: %w)", perr, err), rec.Position)
			}
		}
		pj.st.Lock()
		pj.st.parked = append(pj.st.parked, p)
		pj.st.Unlock()
		if l := pj.r.log; l != nil {
			l.LogAttrs(ctx, slog.LevelWarn, "projection: event parked", slog.String("projector", pj.name),
				slog.String("position", rec.Position.String()), slog.String("type", rec.Type), slog.Any("error", err))
		}
		return nil
	}
	return pj.halt(err, rec.Position)
}

// try runs h on rec up to the configured number of attempts, pausing with
// the backoff between them. Infrastructure failures (see WithClassifier) do
// not count as attempts: they are retried until they stop or ctx ends. It
// returns nil on success, else the last error; interrupted reports that ctx
// ended during a pause.
func (pj *proj) try(ctx, hctx context.Context, h event.Handler, rec *event.Record) (interrupted bool, err error) {
	infra := 0
	for n := 1; ; {
		err = pj.handle(hctx, h, *rec)
		if err != nil && pj.cfg.classify(err) {
			infra++
			pj.setInfra(err)
			pj.notify.publish()
			if !sleep(ctx, InfraBackoff(infra)) {
				return true, err
			}
			continue
		}
		if infra > 0 {
			pj.setInfra(nil)
			infra = 0
		}
		if err == nil || n >= pj.cfg.attempts {
			return false, err
		}
		if pj.cfg.backoff != nil {
			if d := pj.cfg.backoff(n); d > 0 && !sleep(ctx, d) {
				return true, err
			}
		}
		n++
	}
}

func (pj *proj) halt(err error, at event.Position) error {
	se := &StoppedError{Projector: pj.name, Position: at, Err: err}
	pj.stopped.Store(se)
	if l := pj.r.log; l != nil {
		l.LogAttrs(context.Background(), slog.LevelError, "projection: projector stopped", slog.String("projector", pj.name),
			slog.String("position", at.String()), slog.Any("error", err))
	}
	pj.notify.publish() // wake WaitFor callers so they can see the cause
	return se
}

func (pj *proj) handle(ctx context.Context, h event.Handler, rec event.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h.Handle(ctx, rec)
}

// saveCheckpoint saves pos, unless the projector keeps its own. A save
// refused because the stored checkpoint is ahead (store.ErrConflict: another
// runner of this projector got further) stops the projector with it; other
// save errors are reported in Status and the next save tries again.
func (pj *proj) saveCheckpoint(ctx context.Context, pos event.Position) error {
	if pj.selfCP != nil {
		return nil
	}
	err := pj.r.cps.Save(ctx, pj.name, Checkpoint{Position: pos, Version: pj.version})
	pj.st.Lock()
	pj.st.saveErr = err
	pj.st.Unlock()
	if err != nil && pj.r.log != nil {
		pj.r.log.LogAttrs(ctx, slog.LevelError, "projection: checkpoint save failed", slog.String("projector", pj.name), slog.Any("error", err))
	}
	if errors.Is(err, store.ErrConflict) {
		return pj.halt(fmt.Errorf("checkpoint not saved: %w", err), pos)
	}
	return nil
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

// broadcast wakes every waiter on publish. The channel is made only when
// someone waits, so publishing with no waiters costs one atomic load.
type broadcast struct {
	mu      sync.Mutex
	ch      chan struct{}
	waiting atomic.Bool
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
		b.waiting.Store(true)
	}
	return b.ch
}

func (b *broadcast) publish() {
	if !b.waiting.Load() {
		return
	}
	b.mu.Lock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
	b.waiting.Store(false)
	b.mu.Unlock()
}
