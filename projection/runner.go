package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
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
)

var stateNames = [...]string{"idle", "running", "catching up", "rebuilding", "stopped", "closed"}

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

// AddOption configures one projector in Runner.Add.
type AddOption func(*config)

type config struct {
	mode     Mode
	policy   Policy
	attempts int
	backoff  func(n int) time.Duration
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
	Head       event.Position // log head
	Behind     uint64         // Head - Checkpoint, in positions
	// TimeBehind is the commit time of the head record minus that of the
	// last applied one (of the first record when none is applied yet): how
	// old the view is compared with the log. Zero when caught up.
	TimeBehind time.Duration
	Err        error // why it is stopped (a *StoppedError), or the last checkpoint save error
	Parked     int   // events in the dead-letter list
	Version    int
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
	r := &Runner{lg: lg, batch: 256, projs: make(map[string]*proj)}
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
	mu      sync.Mutex // held by whoever delivers events to p
	pos     atomic.Uint64
	stopped atomic.Pointer[StoppedError]
	exited  atomic.Bool // the async goroutine has returned
	buf     []event.Record
	notify  broadcast     // position advanced, or the projector stopped or exited
	resume  chan struct{} // wakes a stopped async goroutine

	st struct {
		sync.Mutex
		saveErr    error
		rebuilding bool
		parked     []Parked
	}
}

// Add registers p. Call it before Start. Names must be unique.
func (r *Runner) Add(p Projector, opts ...AddOption) error {
	c := config{attempts: 3, backoff: DefaultBackoff}
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
	pj := &proj{r: r, p: p, name: name, cfg: c, buf: make([]event.Record, 0, r.batch), resume: make(chan struct{}, 1)}
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
			go pj.follow(runCtx)
		}
	}
	return firstErr
}

// Close stops the async projectors gracefully: each finishes the event in
// hand and saves its checkpoint. It waits for them. Later calls to Sync,
// WaitFor, Resume and Rebuild return ErrClosed (WaitFor wrapped in a
// *NotReachedError); a Rebuild in progress gives up without swapping.
// Concurrent calls all wait; it always returns nil.
func (r *Runner) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed.Store(true)
		cancel, unhook := r.cancel, r.unhook
		order := r.order
		r.mu.Unlock()
		if unhook != nil {
			unhook()
		}
		if cancel != nil {
			cancel()
		}
		r.wg.Wait()
		for _, pj := range order {
			pj.notify.publish()
		}
	})
	return nil
}

// Sync brings every inline projector up to at least pos. command.Bus calls
// it after each commit (command.WithSyncer). Concurrent Syncs are safe: each
// projector applies events in log order whoever delivers them.
//
// Errors: *StoppedError for a stopped inline projector (the event stays
// unapplied until Resume); ctx.Err(); ErrNotStarted; ErrClosed.
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
		pj.mu.Lock()
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
		pj.mu.Lock()
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
	head, _ := pj.r.lg.Head(context.WithoutCancel(ctx))
	e := &NotReachedError{Projector: pj.name, Want: want, Reached: event.Position(reached), State: pj.state(reached, head), Err: err}
	if se := pj.stopped.Load(); se != nil {
		e.Cause = se
	}
	return e
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
	pj.mu.Lock()
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
	head, err := r.lg.Head(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	order := r.order
	r.mu.Unlock()
	headTime := r.recordTime(ctx, head)
	out := make([]Status, 0, len(order))
	for _, pj := range order {
		out = append(out, pj.status(ctx, head, headTime))
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
	head, err := r.lg.Head(ctx)
	if err != nil {
		return Status{}, err
	}
	return pj.status(ctx, head, r.recordTime(ctx, head)), nil
}

// recordTime returns the commit time of the record at pos, or the zero time.
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

func (pj *proj) status(ctx context.Context, head event.Position, headTime time.Time) Status {
	pos := pj.pos.Load()
	s := Status{
		Name: pj.name, Mode: pj.cfg.mode, Policy: pj.cfg.policy, State: pj.state(pos, head),
		Checkpoint: event.Position(pos), Head: head, Version: pj.version,
	}
	if head > s.Checkpoint {
		s.Behind = uint64(head - s.Checkpoint)
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
		s.Err = pj.st.saveErr
	}
	s.Parked = len(pj.st.parked)
	pj.st.Unlock()
	return s
}

func (pj *proj) state(pos uint64, head event.Position) State {
	if pj.r.closed.Load() {
		return Closed
	}
	if pj.stopped.Load() != nil {
		return Stopped
	}
	pj.st.Lock()
	rebuilding := pj.st.rebuilding
	pj.st.Unlock()
	switch {
	case rebuilding:
		return Rebuilding
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
// event is applied once, without retries, and out of order, after
// everything that followed it; the projector must tolerate that for the
// events it may park.
//
// Errors: ErrUnknownProjector; ErrNotParked when no event at pos is parked;
// the projector's error (the event stays parked, with that error).
func (r *Runner) Replay(ctx context.Context, name string, pos event.Position) error {
	pj, err := r.get(name)
	if err != nil {
		return err
	}
	pj.mu.Lock() // no delivery, hence no park or rebuild swap, meanwhile
	defer pj.mu.Unlock()
	pj.st.Lock()
	idx := pj.parkedAt(pos)
	if idx < 0 {
		pj.st.Unlock()
		return fmt.Errorf("%w: %s at position %v", ErrNotParked, name, pos)
	}
	rec := pj.st.parked[idx].Record
	pj.st.Unlock()
	herr := pj.handle(ctx, pj.p, rec)
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
func (pj *proj) follow(ctx context.Context) {
	defer func() {
		pj.exited.Store(true)
		pj.notify.publish()
		pj.r.wg.Done()
	}()
	// Handlers get a context that Close does not cancel, so the event in
	// hand finishes; the loop checks ctx between events.
	hctx := detach(ctx)
	for ctx.Err() == nil {
		pj.mu.Lock()
		more, err := pj.step(ctx, hctx, ^event.Position(0))
		pj.mu.Unlock()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrStopped):
			select {
			case <-pj.resume: // Resume or a successful Rebuild
			case <-ctx.Done():
				return
			}
		case errors.Is(err, store.ErrClosed):
			return
		case err != nil:
			// A transient log error: back off a little and try again.
			if !sleep(ctx, 100*time.Millisecond) {
				return
			}
		case more:
		default:
			err := pj.r.lg.Wait(ctx, event.Position(pj.pos.Load()))
			if errors.Is(err, store.ErrClosed) {
				return
			}
			if err != nil && !sleep(ctx, 100*time.Millisecond) {
				return
			}
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
	recs, err := pj.r.lg.Read(ctx, pos, pj.buf[:0])
	if err != nil {
		return false, err
	}
	if len(recs) == 0 {
		if upTo == ^event.Position(0) {
			return false, nil
		}
		// The commit at upTo is not readable yet (a durable log's
		// horizon is behind it): wait for it rather than return early.
		if err := pj.r.lg.Wait(ctx, pos); err != nil {
			return false, err
		}
		return true, nil
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
	if applied > pos {
		pj.saveCheckpoint(hctx, applied)
		pj.notify.publish()
	}
	return failed == nil, failed
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
		return ctx.Err()
	}
	if pj.cfg.policy == Park {
		p := Parked{Record: *rec, Err: err, Attempts: pj.cfg.attempts, At: time.Now()}
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
// the backoff between them. It returns nil on success, else the last error;
// interrupted reports that ctx ended during a pause.
func (pj *proj) try(ctx, hctx context.Context, h event.Handler, rec *event.Record) (interrupted bool, err error) {
	for n := 1; ; n++ {
		if err = pj.handle(hctx, h, *rec); err == nil || n >= pj.cfg.attempts {
			return false, err
		}
		if pj.cfg.backoff != nil {
			if d := pj.cfg.backoff(n); d > 0 && !sleep(ctx, d) {
				return true, err
			}
		}
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

func (pj *proj) saveCheckpoint(ctx context.Context, pos event.Position) {
	if pj.selfCP != nil {
		return
	}
	err := pj.r.cps.Save(ctx, pj.name, Checkpoint{Position: pos, Version: pj.version})
	pj.st.Lock()
	pj.st.saveErr = err
	pj.st.Unlock()
	if err != nil && pj.r.log != nil {
		pj.r.log.LogAttrs(ctx, slog.LevelError, "projection: checkpoint save failed", slog.String("projector", pj.name), slog.Any("error", err))
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
