package pgstore_test

import (
	"testing"

	"github.com/cqrskit/cqrs/projection/leasetest"
)

// TestLeaserConformance runs the lease suite on a fresh schema per subtest.
func TestLeaserConformance(t *testing.T) {
	pool := newPool(t, 0)
	leasetest.Run(t, func(t *testing.T) leasetest.Target {
		st := newStore(t, pool)
		return leasetest.Target{Leases: st, Checkpoints: st}
	})
}
