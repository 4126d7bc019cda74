package projectiontest_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/projection/projectiontest"
	"github.com/cqrskit/cqrs/store"
)

// TestReplayMemory runs the Replay case on a plain projector over the
// in-memory store.
func TestReplayMemory(t *testing.T) {
	projectiontest.RunReplay(t, func(t *testing.T) projectiontest.ReplayHarness {
		st := store.NewMemory()
		t.Cleanup(func() { _ = st.Close() })
		return projectiontest.ReplayHarness{
			Store: st, Log: st,
			NewProjector: func(t *testing.T, name string, check func(context.Context, event.Record) error) (projection.Projector, func() []event.Position) {
				var mu sync.Mutex
				var seen []event.Position
				h := event.HandlerFunc(func(ctx context.Context, rec event.Record) error {
					if err := check(ctx, rec); err != nil {
						return err
					}
					mu.Lock()
					defer mu.Unlock()
					seen = append(seen, rec.Position)
					return nil
				})
				return projection.Named(name, h), func() []event.Position {
					mu.Lock()
					defer mu.Unlock()
					return slices.Clone(seen)
				}
			},
		}
	})
}
