package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Lease is a time-bounded claim on a name (a projector, or one partition of
// one), held by one owner. The lease store's clock decides expiry, so
// owners on machines with skewed clocks still agree.
type Lease struct {
	// Name is what the lease is on, e.g. a projector name.
	Name string
	// Owner identifies the holder, e.g. "host-a/4711"; empty for a free
	// name.
	Owner string
	// Token is the fencing token: it grows with every change of owner of
	// Name and is never reused, even after the lease expired or was
	// released; renewals keep it. A write conditioned on the token (see
	// FencedCheckpoints and FenceFrom) is refused once anyone else has
	// acquired Name, which is what stops an owner that was paused past its
	// lease from writing when it wakes up.
	Token uint64
	// Expires is when the lease lapses unless renewed (the store's clock).
	Expires time.Time
}

// Leaser grants leases. Implementations must be safe for concurrent use by
// many processes; the lease store is the single source of truth.
type Leaser interface {
	// Acquire claims name for owner for ttl. It succeeds when name is free,
	// expired or already held by owner (then it acts as Renew and keeps the
	// token). A new owner gets a token greater than every earlier one for
	// name. When another owner holds an unexpired lease, Acquire returns a
	// *LeaseHeldError (matching ErrLeaseHeld) naming it.
	Acquire(ctx context.Context, name, owner string, ttl time.Duration) (Lease, error)
	// Renew extends l by ttl from now. It returns a *FencedError (matching
	// ErrFenced) when l.Token is no longer the current token for l.Name or
	// the lease has expired: the caller has lost the lease and must stop
	// writing.
	Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// Release gives the lease up at once, so another owner can acquire it
	// without waiting for expiry. Releasing a lease that was already lost
	// is not an error.
	Release(ctx context.Context, l Lease) error
	// Holder returns the current unexpired lease on name, or a Lease with
	// only Name set (Owner "") when it is free.
	Holder(ctx context.Context, name string) (Lease, error)
	// List returns the unexpired leases whose names start with prefix, in
	// name order. Runners use it to count live members when balancing
	// partitions.
	List(ctx context.Context, prefix string) ([]Lease, error)
}

// FencedCheckpoints is a CheckpointStore whose saves can be conditioned on
// a lease from the same store, atomically: the runner uses SaveFenced for
// every checkpoint of a leased projector.
type FencedCheckpoints interface {
	CheckpointStore
	// SaveFenced saves cp like Save, but only while fence is the current
	// lease on fence.Name (same token, unexpired); otherwise it saves
	// nothing and returns a *FencedError (matching ErrFenced).
	SaveFenced(ctx context.Context, name string, cp Checkpoint, fence Lease) error
}

var (
	// ErrLeaseHeld: Acquire found the name held by another live owner.
	ErrLeaseHeld = errors.New("projection: lease held by another owner")
	// ErrFenced: a write or renewal carried a fencing token that is no
	// longer current: another owner has taken over, so the caller must stop
	// and go back to standby.
	ErrFenced = errors.New("projection: fenced: lease lost to another owner")
)

// LeaseHeldError reports the live lease that made Acquire fail. It matches
// ErrLeaseHeld.
type LeaseHeldError struct {
	Held Lease
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("projection: lease %q held by %q (token %d) until %s",
		e.Held.Name, e.Held.Owner, e.Held.Token, e.Held.Expires.Format(time.RFC3339Nano))
}

// Is makes LeaseHeldError match ErrLeaseHeld.
func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// FencedError reports a write or renewal refused because its fencing token
// is stale. It matches ErrFenced.
type FencedError struct {
	Name  string
	Token uint64 // the token the caller presented
	// Current is the token now in force for Name, 0 when nobody holds it
	// (the caller's lease expired and was not taken yet).
	Current uint64
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("projection: lease %q: token %d is stale (current %d): another owner took over", e.Name, e.Token, e.Current)
}

// Is makes FencedError match ErrFenced.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

type fenceKey struct{}

// WithFence returns ctx carrying the lease its holder writes under. The
// runner sets it on the context a leased projector's Handle receives, so a
// SelfCheckpointer can condition its atomic view-and-checkpoint write on
// the token (and return a *FencedError when it is stale).
func WithFence(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, fenceKey{}, l)
}

// FenceFrom returns the lease set by WithFence, if any.
func FenceFrom(ctx context.Context) (Lease, bool) {
	l, ok := ctx.Value(fenceKey{}).(Lease)
	return l, ok
}

// Partition identifies one of Count slices of a partitioned projector
// (see the runner's partition option): records whose stream hashes to
// Index (PartitionOf) belong to it, and it has its own checkpoint and
// lease, both keyed by Name.
type Partition struct {
	Index, Count int
	// Name keys the partition's checkpoint and lease: PartitionName of
	// the projector's name.
	Name string
}

// PartitionName is the checkpoint and lease name of partition index of
// count of the projector called name.
func PartitionName(name string, index, count int) string {
	return fmt.Sprintf("%s/p%dof%d", name, index, count)
}

// PartitionOf returns the partition (0..count-1) of a stream: FNV-1a of the
// stream name modulo count, the same in every process and release, so all
// records of a stream go to one partition and keep their order.
func PartitionOf(stream string, count int) int {
	if count <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(stream); i++ {
		h ^= uint32(stream[i])
		h *= 16777619
	}
	return int(h % uint32(count))
}

type partitionKey struct{}

// WithPartition returns ctx carrying p. The runner sets it on the contexts
// a partitioned projector's Handle and LoadCheckpoint receive, so a
// SelfCheckpointer keeps one checkpoint per partition (keyed by p.Name).
func WithPartition(ctx context.Context, p Partition) context.Context {
	return context.WithValue(ctx, partitionKey{}, p)
}

// PartitionFrom returns the partition set by WithPartition, if any.
func PartitionFrom(ctx context.Context) (Partition, bool) {
	p, ok := ctx.Value(partitionKey{}).(Partition)
	return p, ok
}

// PartitionReader is an optional capability of the log a Runner follows
// (the store.Log given to NewRunner). A partitioned projector sees only the
// records of its partition, yet it reads the whole log to find them: with n
// partitions in one process, every record is read n times. Decoding the
// payloads of the other partitions' records is the larger part of that
// cost, and ReadPartition lets the log skip it.
//
// ReadPartition is Read, except that a record whose stream is not in p
// (PartitionOf(rec.Stream, p.Count) != p.Index) may come back with its
// Data and Metadata left out (nil and zero): the runner never hands such a record
// to the projector, it only moves past it. Every record after after is
// still returned, in position order, with its Position and Stream set, so
// gap detection, checkpoints and per-stream order are the same as with
// Read; and a record of another partition that could not be decoded is no
// error for p (it is the error of the partition it belongs to).
type PartitionReader interface {
	ReadPartition(ctx context.Context, after event.Position, dst []event.Record, p Partition) ([]event.Record, error)
}

// CheckAcquireArgs is the argument check of Leaser.Acquire that every
// Leaser shares, so they all refuse the same input the same way: an empty
// name or owner, or a ttl that is not positive, gives a *store.InvalidError
// (matching store.ErrInvalid).
func CheckAcquireArgs(name, owner string, ttl time.Duration) error {
	if owner == "" && name != "" {
		return &store.InvalidError{What: "lease", Reason: fmt.Sprintf("%q: empty owner", name)}
	}
	return CheckRenewArgs(Lease{Name: name}, ttl)
}

// CheckRenewArgs is CheckAcquireArgs for Leaser.Renew: the lease must name
// what it is on (its owner is not checked: the token decides), and the ttl
// must be positive.
func CheckRenewArgs(l Lease, ttl time.Duration) error {
	switch {
	case l.Name == "":
		return &store.InvalidError{What: "lease", Reason: "empty name"}
	case ttl <= 0:
		return &store.InvalidError{What: "lease", Reason: fmt.Sprintf("%q: ttl %v is not positive", l.Name, ttl)}
	}
	return nil
}
