package projection

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Checkpoint is a projector's durable progress: every record at or below
// Position has been applied by the projector at Version.
type Checkpoint struct {
	Position event.Position
	// Version is the projector's declared version (see Versioned) when the
	// checkpoint was written; a mismatch at start-up triggers a rebuild.
	Version int
}

// CheckpointStore persists checkpoints by projector name. Implementations
// must be safe for concurrent use.
type CheckpointStore interface {
	// Load returns the saved checkpoint, or the zero Checkpoint (and nil
	// error) for a name never saved.
	Load(ctx context.Context, name string) (Checkpoint, error)
	// Save records cp for name, replacing what was there. It never moves a
	// checkpoint backwards: when cp.Position is below the stored position
	// (another runner of the same projector got further), it saves nothing
	// and returns a *store.ConflictError{Table: "checkpoints", Key: name}
	// (matching store.ErrConflict) with the refused position as Expected
	// and the stored one as Actual. An equal position may change Version.
	Save(ctx context.Context, name string, cp Checkpoint) error
}

// MemoryCheckpoints is the in-memory CheckpointStore. The zero value is ready
// to use.
type MemoryCheckpoints struct {
	mu     sync.Mutex
	m      map[string]Checkpoint
	parked map[string][]DeadLetter
}

var _ CheckpointStore = (*MemoryCheckpoints)(nil)

// Load implements CheckpointStore.
func (s *MemoryCheckpoints) Load(ctx context.Context, name string) (Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name], nil
}

// Save implements CheckpointStore.
func (s *MemoryCheckpoints) Save(ctx context.Context, name string, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]Checkpoint)
	}
	if cur, ok := s.m[name]; ok && cp.Position < cur.Position {
		return &store.ConflictError{Table: "checkpoints", Key: name, Expected: uint64(cp.Position), Actual: uint64(cur.Position)}
	}
	s.m[name] = cp
	return nil
}

// DeadLetter is a parked event as a ParkStore keeps it. The record itself
// stays in the log, so only its position and the failure are stored.
type DeadLetter struct {
	Position event.Position
	Err      string
	Attempts int
	At       time.Time
}

// ParkStore is an optional CheckpointStore capability that makes dead
// letters durable. Without it, parked events live in the runner's memory:
// after a restart the checkpoint is past them and they are no longer
// listed. With it, the runner records each parked event before it moves on,
// reloads the list at Start (reading the records back from the log), and
// removes an entry when Replay succeeds.
type ParkStore interface {
	// Park adds or replaces the dead letter at dl.Position for name.
	Park(ctx context.Context, name string, dl DeadLetter) error
	// Unpark removes the dead letter at pos; removing a missing one is not
	// an error.
	Unpark(ctx context.Context, name string, pos event.Position) error
	// ReplaceParked replaces name's whole list (after a rebuild).
	ReplaceParked(ctx context.Context, name string, dls []DeadLetter) error
	// LoadParked returns name's dead letters in position order.
	LoadParked(ctx context.Context, name string) ([]DeadLetter, error)
}

var _ ParkStore = (*MemoryCheckpoints)(nil)

// Park implements ParkStore.
func (s *MemoryCheckpoints) Park(ctx context.Context, name string, dl DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parked == nil {
		s.parked = make(map[string][]DeadLetter)
	}
	list := s.parked[name]
	i, found := slices.BinarySearchFunc(list, dl.Position, func(d DeadLetter, p event.Position) int { return cmp.Compare(d.Position, p) })
	if found {
		list[i] = dl
	} else {
		list = slices.Insert(list, i, dl)
	}
	s.parked[name] = list
	return nil
}

// Unpark implements ParkStore.
func (s *MemoryCheckpoints) Unpark(ctx context.Context, name string, pos event.Position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if list, ok := s.parked[name]; ok {
		s.parked[name] = slices.DeleteFunc(list, func(d DeadLetter) bool { return d.Position == pos })
	}
	return nil
}

// ReplaceParked implements ParkStore.
func (s *MemoryCheckpoints) ReplaceParked(ctx context.Context, name string, dls []DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parked == nil {
		s.parked = make(map[string][]DeadLetter)
	}
	list := slices.Clone(dls)
	slices.SortFunc(list, func(a, b DeadLetter) int { return cmp.Compare(a.Position, b.Position) })
	s.parked[name] = list
	return nil
}

// LoadParked implements ParkStore.
func (s *MemoryCheckpoints) LoadParked(ctx context.Context, name string) ([]DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.parked[name]), nil
}
