package projection

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Checkpoint is a projector's durable progress: every record at or below
// Position has been applied by the projector at Version.
type Checkpoint struct {
	Position event.Position
	// Version is the projector's logic version (see WithVersion) when the
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

// ParkStore is an optional CheckpointStore capability that makes dead
// letters durable. The record stays in the log, so a ParkStore keeps only
// dl.Record.Position, the text of dl.Err, Attempts and At; LoadParked
// returns DeadLetters with only Record.Position set and Err an error with
// the stored text (nil for an empty text), and the runner reads the records
// back from the log. Without it, parked events live in the runner's memory:
// after a restart the checkpoint is past them and they are no longer
// listed. With it, the runner records each parked event before it moves on,
// reloads the list at Start (reading the records back from the log), and
// removes an entry when Replay succeeds.
type ParkStore interface {
	// Park adds or replaces the dead letter at dl.Record.Position for name.
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
	dl = stored(dl)
	list := s.parked[name]
	i, found := slices.BinarySearchFunc(list, dl.Record.Position, func(d DeadLetter, p event.Position) int { return cmp.Compare(d.Record.Position, p) })
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
		s.parked[name] = slices.DeleteFunc(list, func(d DeadLetter) bool { return d.Record.Position == pos })
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
	list := make([]DeadLetter, len(dls))
	for i, dl := range dls {
		list[i] = stored(dl)
	}
	slices.SortStableFunc(list, func(a, b DeadLetter) int { return cmp.Compare(a.Record.Position, b.Record.Position) })
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

// stored is dl as a ParkStore keeps it: the position of the record, and the
// text of the error.
func stored(dl DeadLetter) DeadLetter {
	dl.Record = event.Record{Position: dl.Record.Position}
	if dl.Err != nil {
		dl.Err = errors.New(dl.Err.Error())
	}
	return dl
}
