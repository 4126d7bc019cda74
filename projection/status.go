package projection

import (
	"context"
	"fmt"
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
	// Standby: the projector is leased (WithLeases) and another runner
	// holds the lease (Status.Owner), or nobody does yet; this runner
	// tries to acquire it now and then. Status.Checkpoint follows the
	// owner's saved checkpoint.
	Standby
)

var stateNames = [...]string{"idle", "running", "catching up", "rebuilding", "stopped", "closed", "unavailable", "standby"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
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

	// Leased says the projector runs under the runner's leases
	// (WithLeases). Owner is then the runner holding its lease (this
	// runner's Owner when it delivers, "" when nobody holds it) and Epoch
	// that lease's fencing token, which grows with every change of owner.
	Leased bool
	Owner  string
	Epoch  uint64
	// Partition is set for one partition of a partitioned projector
	// (WithPartitions); Name is then the partition's name.
	Partition *Partition
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
// Errors: the log's Head error; a plain error for an unknown name.
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
	head, err := r.events.Head(ctx)
	if err != nil {
		return 0, nil, err
	}
	if hr, ok := r.events.(store.HorizonReporter); ok {
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
	recs, err := r.events.Read(ctx, pos-1, make([]event.Record, 0, 1))
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
		if ec, ok := pj.r.events.(store.EventCounter); ok && !pj.r.contig {
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
	if pj.part != nil {
		p := *pj.part
		s.Partition = &p
	}
	if pj.lease != nil {
		_, holder := pj.lease.get()
		s.Leased, s.Owner, s.Epoch = true, holder.Owner, holder.Token
	}
	pj.health.Lock()
	if s.Err == nil {
		s.Err = pj.health.infraErr
	}
	if s.Err == nil {
		s.Err = pj.health.saveErr
	}
	s.Parked = len(pj.health.parked)
	pj.health.Unlock()
	return s
}

func (pj *proj) infraErr() error {
	pj.health.Lock()
	defer pj.health.Unlock()
	return pj.health.infraErr
}

func (pj *proj) setInfra(err error) {
	pj.health.Lock()
	pj.health.infraErr = err
	pj.unavailable.Store(err != nil)
	pj.health.Unlock()
}

func (pj *proj) state(pos uint64, head event.Position) State {
	if pj.r.closed.Load() {
		return Closed
	}
	if pj.stopped.Load() != nil {
		return Stopped
	}
	pj.health.Lock()
	rebuilding, unavailable := pj.health.rebuilding, pj.health.infraErr != nil
	pj.health.Unlock()
	switch {
	case rebuilding:
		return Rebuilding
	case unavailable && !pj.exited.Load():
		return Unavailable
	case !pj.r.ready.Load():
		return Idle
	case pj.exited.Load():
		return Closed // Start's ctx ended, or the log was closed
	case pj.lease != nil && !pj.lease.owns():
		return Standby
	case uint64(head) > pos:
		return CatchingUp
	}
	return Running
}
