package projection

import (
	"context"

	"github.com/cqrskit/cqrs/event"
)

// Projector folds events into a read model. Handle is called once per record,
// in position order, by one goroutine at a time. It must be deterministic in
// the record (use rec.Time, not time.Now) so that a rebuild reproduces the
// live view. Returning an error (or panicking) makes the runner retry the
// same record and then apply the projector's failure policy; the record is
// never skipped silently.
//
// An event.Router has a Handle method, so a projector usually embeds one and
// routes typed events with event.On.
type Projector interface {
	// Name identifies the projector; it keys checkpoints and status.
	Name() string
	event.Handler
}

// Versioned is an optional Projector capability. When the version differs
// from the one saved with the checkpoint, the runner rebuilds the projection
// at start-up: change the number whenever the projector's logic changes.
type Versioned interface {
	Version() int
}

// Rebuilder is an optional Projector capability that enables rebuilds without
// downtime. Shadow returns a projector writing into a fresh, empty read model
// that queries do not see, and a swap function that makes that read model the
// live one atomically (for example by storing a pointer). The runner replays
// the log into the shadow while the live projector keeps serving, then calls
// swap while live delivery is paused, so no event is applied to neither or
// both.
type Rebuilder interface {
	Shadow(ctx context.Context) (shadow event.Handler, swap func(), err error)
}

// ShadowFlusher is an optional capability of the shadow handler a Rebuilder
// returns. A shadow is private until the swap, so it may defer work that
// only queries need (for example, maintain a ranking once per key at the
// end instead of once per event). Rebuild calls Flush after the bulk
// replay, outside the pause of live delivery, and again just before the
// swap, when only the tail replayed during the pause can be pending; after
// the first Flush the shadow should apply events fully, so that the second
// one is cheap.
type ShadowFlusher interface {
	Flush(ctx context.Context) error
}

// SelfCheckpointer is an optional Projector capability for projectors whose
// read model stores the checkpoint atomically with each view update (in the
// same SQL transaction, or a Redis MULTI). Handle must persist rec.Position
// with the update; the runner then loads the starting position from the
// projector and never saves a checkpoint for it, which makes the effect of
// each event exactly-once across crashes.
type SelfCheckpointer interface {
	LoadCheckpoint(ctx context.Context) (Checkpoint, error)
}

// Replayer is an optional Projector capability used by Runner.Replay to
// apply a parked record out of order. A projector that keeps its own
// checkpoint (SelfCheckpointer) needs it, because its Handle skips records
// at or below that checkpoint, and the checkpoint is past a parked record
// as soon as a later one is applied. Replay must apply rec whatever the
// checkpoint, and must not move the checkpoint backwards.
type Replayer interface {
	Replay(ctx context.Context, rec event.Record) error
}

// Named gives a handler a name so it can be added to a Runner; use it for an
// event.Router built on the spot (inline, it is the synchronous in-process
// bus: committed events reach it in commit order).
func Named(name string, h event.Handler) Projector { return named{name, h} }

type named struct {
	name string
	event.Handler
}

func (n named) Name() string { return n.name }
