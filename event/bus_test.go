package event_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

type counted struct {
	mu   sync.Mutex
	seen map[uuid.UUID]int
	fail int // fail this many deliveries first
}

func (c *counted) Handle(_ context.Context, rec event.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return errors.New("subscriber down")
	}
	if c.seen == nil {
		c.seen = map[uuid.UUID]int{}
	}
	c.seen[rec.ID]++
	return nil
}

func (c *counted) count(id uuid.UUID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id]
}

type pinged struct{ N int }

func (pinged) EventType() string { return "test.Pinged" }

// A Bus fed by a runner that retries (WithRetry(3)) re-delivers a record
// only to the subscriber that failed on it: the healthy one sees it once.
func TestBusRetryDeliversOnlyToFailedSubscribers(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	var bus event.Bus
	healthy, flaky := &counted{}, &counted{fail: 2}
	bus.Subscribe(healthy)
	bus.Subscribe(flaky)
	r := projection.NewRunner(st)
	require.NoError(t, r.Add(projection.Named("bus", &bus), projection.WithRetry(3, nil)))
	ctx := context.Background()
	require.NoError(t, r.Start(ctx))
	defer r.Close()
	pos, err := st.Update(ctx, func(tx store.Tx) error { tx.Record("s", pinged{1}); return nil })
	require.NoError(t, err)
	require.NoError(t, r.Sync(ctx, pos))
	recs, err := st.Read(ctx, 0, make([]event.Record, 0, 8))
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, 1, healthy.count(recs[0].ID), "the healthy subscriber sees the record once")
	assert.Equal(t, 1, flaky.count(recs[0].ID), "the failing one gets it when it recovers")
}

// The same through the public Publish: re-publishing a record after a
// partial failure reaches only the subscribers that failed; when all have
// it, a later re-publication (another record, or the same one replayed
// after success) is delivered normally.
func TestBusRepublishAfterPartialFailure(t *testing.T) {
	var bus event.Bus
	a, b, c := &counted{}, &counted{fail: 1}, &counted{fail: 2}
	bus.Subscribe(a)
	bus.Subscribe(b)
	bus.Subscribe(c)
	ctx := context.Background()
	rec := event.Record{ID: uuid.New(), Type: "test.Pinged", Data: pinged{1}}
	require.Error(t, bus.Publish(ctx, rec))
	require.Error(t, bus.Publish(ctx, rec))
	require.NoError(t, bus.Publish(ctx, rec))
	assert.Equal(t, []int{1, 1, 1}, []int{a.count(rec.ID), b.count(rec.ID), c.count(rec.ID)})

	// Once every subscriber has it, the record is forgotten: publishing it
	// again (a replay) delivers it to all.
	require.NoError(t, bus.Publish(ctx, rec))
	assert.Equal(t, []int{2, 2, 2}, []int{a.count(rec.ID), b.count(rec.ID), c.count(rec.ID)})

	other := event.Record{ID: uuid.New(), Type: "test.Pinged", Data: pinged{2}}
	require.NoError(t, bus.Publish(ctx, other))
	assert.Equal(t, []int{1, 1, 1}, []int{a.count(other.ID), b.count(other.ID), c.count(other.ID)})
}
