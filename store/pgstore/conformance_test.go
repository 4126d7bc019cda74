package pgstore_test

import (
	"testing"
	"time"

	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/projection/projectiontest"
	"github.com/cqrskit/cqrs/store/pgstore"
	"github.com/cqrskit/cqrs/store/storetest"
)

func TestConformance(t *testing.T) {
	pool := newPool(t, 0)
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		st := newStore(t, pool, pgstore.WithPollInterval(100*time.Millisecond))
		return storetest.Harness{Store: st, Log: st, Close: st.Close}
	})
}

// TestCheckpointStoreConformance runs the checkpoint suite, including its
// ParkStore subtests, on a fresh schema per subtest.
func TestCheckpointStoreConformance(t *testing.T) {
	pool := newPool(t, 0)
	projectiontest.RunCheckpointStore(t, func(t *testing.T) projection.CheckpointStore {
		return newStore(t, pool)
	})
}
