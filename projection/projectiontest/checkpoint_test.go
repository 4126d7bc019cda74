package projectiontest_test

import (
	"testing"

	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/projection/projectiontest"
)

// TestCheckpointStoreWithoutParkStore runs the suite on a store that has only
// the CheckpointStore methods: its ParkStore subtests are skipped.
func TestCheckpointStoreWithoutParkStore(t *testing.T) {
	projectiontest.RunCheckpointStore(t, func(*testing.T) projection.CheckpointStore {
		return struct{ projection.CheckpointStore }{&projection.MemoryCheckpoints{}}
	})
}
