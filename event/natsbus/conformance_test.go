package natsbus_test

import (
	"context"
	"sync"
	"testing"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/event/natsbus"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/storetest"
)

// The Follower is a store.Log: the store conformance suite runs against it
// with a store.Memory as the source, relayed through JetStream.
func TestFollowerConformance(t *testing.T) {
	_, js := machineNATS(t)
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		reg := event.NewRegistry()
		if err := storetest.Register(reg); err != nil {
			t.Fatal(err)
		}
		_, opts := unique(t, js)
		if _, err := natsbus.EnsureStream(context.Background(), js, opts...); err != nil {
			t.Fatal(err)
		}
		m := store.NewMemory()
		stop := running(t, natsbus.NewRelay(js, m, reg, opts...))
		f := natsbus.NewFollower(js, reg, opts...)
		var once sync.Once
		return storetest.Harness{Store: m, Log: f, Close: func() error {
			once.Do(func() {
				_ = stop()
				_ = f.Close()
				_ = m.Close()
			})
			return nil
		}}
	})
}
