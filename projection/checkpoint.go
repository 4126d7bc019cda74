package projection

import (
	"context"
	"sync"

	"github.com/cqrskit/cqrs/event"
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
	// Save records cp for name, replacing what was there.
	Save(ctx context.Context, name string, cp Checkpoint) error
}

// MemoryCheckpoints is the in-memory CheckpointStore. The zero value is ready
// to use.
type MemoryCheckpoints struct {
	mu sync.Mutex
	m  map[string]Checkpoint
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
	s.m[name] = cp
	return nil
}
