package projection

import (
	"errors"
	"fmt"

	"github.com/cqrskit/cqrs/event"
)

// Sentinel errors; the typed errors below carry detail and match them with
// errors.Is.
var (
	// ErrStopped: a projector halted on a failing event (policy Stop) and
	// waits for Resume or Rebuild.
	ErrStopped = errors.New("projection: projector stopped")
	// ErrNotReached: WaitFor's context ended before the projection reached
	// the position.
	ErrNotReached = errors.New("projection: position not reached")
	// ErrGap: a contiguous log skipped a position; the projector stopped
	// instead of jumping it.
	ErrGap = errors.New("projection: gap in log positions")
	// ErrUnknownProjector: no projector has that name.
	ErrUnknownProjector = errors.New("projection: unknown projector")
	// ErrNotRebuildable: the projector does not implement Rebuilder.
	ErrNotRebuildable = errors.New("projection: projector cannot be rebuilt")
	// ErrNotStarted: the runner has not been started.
	ErrNotStarted = errors.New("projection: runner not started")
	// ErrClosed: the runner has been closed.
	ErrClosed = errors.New("projection: runner closed")
	// ErrNotParked: Replay found no parked event at that position.
	ErrNotParked = errors.New("projection: no parked event at position")
	// ErrNotReplayable: Replay cannot apply a parked event to a projector
	// that keeps its own checkpoint (SelfCheckpointer) without Replayer.
	ErrNotReplayable = errors.New("projection: projector cannot replay a parked event")
	// ErrRebuilding: a rebuild of that projector is already in progress.
	ErrRebuilding = errors.New("projection: rebuild already in progress")
)

// StoppedError reports a projector halted at Position because of Err. It
// matches ErrStopped and unwraps to Err.
type StoppedError struct {
	Projector string
	Position  event.Position
	Err       error
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("projection: %s stopped at position %v: %v", e.Projector, e.Position, e.Err)
}

// Is makes StoppedError match ErrStopped.
func (e *StoppedError) Is(target error) bool { return target == ErrStopped }

// Unwrap returns the failure that stopped the projector.
func (e *StoppedError) Unwrap() error { return e.Err }

// NotReachedError is returned by WaitFor when its context ends first. It
// matches ErrNotReached and unwraps to the context's error and to Cause:
// the projector's *StoppedError when it is stopped, the infrastructure
// failure it is retrying (state Unavailable), or a *store.HeldBackError
// when the log is held back below Want.
type NotReachedError struct {
	Projector string
	Want      event.Position
	Reached   event.Position
	State     State
	Err       error // the context's error
	Cause     error // why the projector is not progressing, if known (see above)
}

func (e *NotReachedError) Error() string {
	s := fmt.Sprintf("projection: %s reached %v, not %v (%v): %v", e.Projector, e.Reached, e.Want, e.State, e.Err)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Is makes NotReachedError match ErrNotReached.
func (e *NotReachedError) Is(target error) bool { return target == ErrNotReached }

// Unwrap returns the context error and the cause.
func (e *NotReachedError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

// GapError reports a hole in a contiguous log. It matches ErrGap.
type GapError struct {
	Projector string
	Expected  event.Position
	Got       event.Position
}

func (e *GapError) Error() string {
	return fmt.Sprintf("projection: %s expected position %v, log returned %v", e.Projector, e.Expected, e.Got)
}

// Is makes GapError match ErrGap.
func (e *GapError) Is(target error) bool { return target == ErrGap }
