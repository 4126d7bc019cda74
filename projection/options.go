package projection

import (
	"errors"
	"log/slog"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

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

// Option configures a Runner.
type Option func(*Runner)

// WithCheckpoints sets where checkpoints are saved (default: a new
// MemoryCheckpoints).
func WithCheckpoints(cs CheckpointStore) Option { return func(r *Runner) { r.cps = cs } }

// WithLogger sets the logger for failures, parks and rebuilds. Nothing is
// logged on the per-event path. Default: no logging.
func WithLogger(l *slog.Logger) Option { return func(r *Runner) { r.logger = l } }

// maxPartitionRead bounds the records one partition reads at a time.
const maxPartitionRead = 2048

// WithBatchSize sets how many records a projector reads from the log at a
// time and applies between checkpoint saves (default 256). A partition of
// a partitioned projector (WithPartitions) whose log is a PartitionReader
// reads up to n times as many, at most 2048 (its share is about 1/n of
// them), since the other partitions' records are not decoded for it.
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

	version    int
	versionSet bool

	local      bool // exempt from the runner's leases
	partitions int  // WithPartitions; <= 1: none
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
// store.ErrUnavailable, except panics (a panic is a bug in the projector,
// even when its value is a connection error, so it goes to the policy).
func IsInfrastructure(err error) bool {
	return errors.Is(err, store.ErrUnavailable) && !errors.Is(err, event.ErrPanic)
}

// InfraBackoff is the pause before retry n (n >= 1) of an infrastructure
// failure: 10ms doubling up to 2s.
func InfraBackoff(n int) time.Duration {
	d := 10 * time.Millisecond << min(max(n-1, 0), 8)
	return min(d, 2*time.Second)
}

// WithVersion sets the projector's logic version, saved with each
// checkpoint: when it differs from the saved one at Start, the runner
// rebuilds the projector before delivering to it. Bump it whenever the
// projector's logic changes. Add fails at once when the projector is not a
// Rebuilder. The default is 0.
func WithVersion(n int) AddOption {
	return func(c *config) { c.version, c.versionSet = n, true }
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

// DefaultLeaseTTL is the lease time WithLeases uses when given ttl <= 0: a
// dead owner's projectors are taken over about this long after it stopped
// renewing.
const DefaultLeaseTTL = 5 * time.Second

// WithLeases makes the runner's async projectors (and each partition of a
// partitioned one, see WithPartitions) run in one process at a time: the
// runners of every process add the same projectors, and for each one only
// the runner holding its lease in l delivers to it, while the others stand
// by (State Standby) and take over when the lease lapses or is released.
// Inline projectors, and async ones added with Local, are not leased.
//
// owner names this runner in the lease store and in Status; it must be
// unique among the runners sharing l (default: host name, process id and a
// random suffix, so two runners of one process never pass for one). ttl
// (DefaultLeaseTTL when <= 0) bounds how long a dead owner's projectors go
// unattended: the runner takes leases for 7/8 of ttl and renews them every
// ttl/3, and a standby tries to acquire every ttl/16 to ttl/8, so a
// standby takes over within ttl of the owner's death (plus the lease
// store's latency).
//
// Every checkpoint the runner saves for a leased projector goes through
// FencedCheckpoints.SaveFenced, so the checkpoint store must implement it
// (Add fails with ErrUnfencedCheckpoints otherwise, unless the projector
// keeps its own checkpoint). When no WithCheckpoints is given and l is a
// FencedCheckpoints (MemoryLeases, pgstore's Store), l is the checkpoint
// store.
func WithLeases(l Leaser, owner string, ttl time.Duration) Option {
	return func(r *Runner) {
		if ttl <= 0 {
			ttl = DefaultLeaseTTL
		}
		if owner == "" {
			owner = defaultOwner()
		}
		r.leases, r.owner, r.ttl = l, owner, ttl
	}
}

// Local exempts an async projector from the runner's leases (WithLeases):
// every process delivers to it, as to an in-process view that each process
// keeps for itself. Inline projectors are always local.
func Local() AddOption { return func(c *config) { c.local = true } }

// WithPartitions splits an async projector into n partitions (n >= 2): the
// record of stream s goes to partition PartitionOf(s, n), so records of one
// stream keep their order. Each partition has its own goroutine, checkpoint
// and, with WithLeases, its own lease, named PartitionName(name, i, n), so
// partitions spread over the processes: every runner takes a fair share
// (about n divided by the live runners) and gives up the extras when
// another runner joins. The projector's Handle is called concurrently from
// the partitions' goroutines (one record at a time per partition) and sees
// only its partition's records; its context carries the Partition
// (PartitionFrom) and, when leased, the fence (FenceFrom), so a
// SelfCheckpointer keeps one checkpoint per partition. Status reports one
// entry per partition. Partitioned projectors cannot be rebuilt with
// Rebuild; n <= 1 means no partitions.
func WithPartitions(n int) AddOption { return func(c *config) { c.partitions = n } }
