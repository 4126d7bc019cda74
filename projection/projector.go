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

// Rebuilder is an optional Projector capability that enables rebuilds without
// downtime: Shadow returns a fresh, empty read model that queries do not
// see, as a Shadow value. The runner replays the log into Shadow.Handler
// while the live projector keeps serving, then calls Shadow.Swap while live
// delivery is paused, so no event is applied to neither or both. View
// implements it for a read model held behind one pointer.
type Rebuilder interface {
	Shadow(ctx context.Context) (Shadow, error)
}

// Shadow is a read model being rebuilt, as a Rebuilder returns it.
type Shadow struct {
	// Handler applies events to the shadow read model (required).
	Handler event.Handler
	// Flush, if not nil, completes work the shadow deferred: a shadow is
	// private until the swap, so it may skip what only queries need (say,
	// maintain a ranking once per key at the end instead of once per
	// event). Rebuild calls Flush after the bulk replay, outside the pause
	// of live delivery, and again just before Swap, when only the tail
	// replayed during the pause can be pending; after the first Flush the
	// shadow should apply events fully, so that the second one is cheap.
	Flush func(ctx context.Context) error
	// Swap makes the shadow the live read model atomically, for example by
	// storing a pointer (required).
	Swap func()
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
// event.Router built on the spot. Added inline, it is the synchronous
// in-process bus: it receives every committed event in commit order, inside
// Dispatch.
func Named(name string, h event.Handler) Projector { return named{name, h} }

type named struct {
	name string
	event.Handler
}

func (n named) Name() string { return n.name }
