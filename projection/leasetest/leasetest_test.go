package leasetest_test

import (
	"testing"

	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/projection/leasetest"
)

func TestMemoryLeases(t *testing.T) {
	leasetest.Run(t, func(*testing.T) leasetest.Target {
		l := &projection.MemoryLeases{}
		return leasetest.Target{Leases: l, Checkpoints: l}
	})
}
