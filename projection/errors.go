package projection

import (
	"errors"
	"fmt"

	"github.com/cqrskit/cqrs/event"
)

// Sentinel errors a caller branches on; the typed errors below carry
// detail and match them with errors.Is. After Close, methods return
// store.ErrClosed.
var (
	// ErrStopped: a projector halted on a failing event (policy Stop) and
	// waits for Resume or Rebuild.
	ErrStopped = errors.New("projection: projector stopped")
	// ErrNotReached: WaitFor's context ended (or the runner closed) before
	// the projection reached the position.
	ErrNotReached = errors.New("projection: position not reached")
)

// Misuse: plain errors with clear text, not meant to be matched.
var (
	errUnknownProjector = errors.New("projection: unknown projector")
	errNotRebuildable   = errors.New("projection: projector does not implement projection.Rebuilder")
	errNotStarted       = errors.New("projection: runner not started (call Start first)")
	errNotParked        = errors.New("projection: no parked event at position")
	errNotReplayable    = errors.New("projection: projector keeps its own checkpoint and does not implement projection.Replayer")
	errRebuilding       = errors.New("projection: rebuild already in progress")
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

// GapError reports a hole in a contiguous log: the projector stops (a
// *StoppedError wrapping the GapError) instead of jumping it.
type GapError struct {
	Projector string
	Expected  event.Position
	Got       event.Position
}

func (e *GapError) Error() string {
	return fmt.Sprintf("projection: %s expected position %v, log returned %v", e.Projector, e.Expected, e.Got)
}
