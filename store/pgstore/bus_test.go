package pgstore_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/store"
)

// Increment adds one to the counter Key.
type Increment struct{ Key string }

// counter is the write model of Increment.
type counter struct {
	N int `json:"n"`
}

// registerIncrement registers the Increment handler: it pins the counter's
// stream at the version it read, updates the row blindly and records the
// event. Of two concurrent increments that read the same state, the
// UNIQUE (stream, version) constraint lets exactly one commit; the other's
// row write is rolled back with it. pause widens the window between reading
// and committing; also, if set, runs in the unit of work with the new value.
func registerIncrement(bus *command.Bus, counters *store.Table[string, counter], pause func(),
	also func(ctx context.Context, tx store.Tx, key string, n int) error) {
	command.Register(bus, func(ctx context.Context, tx store.Tx, c Increment) error {
		stream := "counter/" + c.Key
		v, err := tx.StreamVersion(stream)
		if err != nil {
			return err
		}
		if err := tx.ExpectVersion(stream, v); err != nil {
			return err
		}
		cur, _, err := counters.Get(tx, c.Key)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if pause != nil {
			pause()
		}
		cur.N++
		if _, err := counters.Put(tx, c.Key, cur); err != nil {
			return err
		}
		if also != nil {
			if err := also(ctx, tx, c.Key, cur.N); err != nil {
				return err
			}
		}
		tx.Record(stream, Incremented{Key: c.Key, N: cur.N})
		return nil
	})
}

// backoff is exponential with full jitter, capped, so that retrying
// writers spread out instead of colliding again in lockstep.
func backoff(n int) time.Duration {
	d := time.Millisecond << min(n, 6)
	return rand.N(d) + time.Millisecond
}

func TestConcurrentCommandsConverge(t *testing.T) {
	const increments = 50
	pool := newPool(t, 24)
	st := newStore(t, pool)
	ctx := context.Background()
	counters := store.NewTable[string, counter](st, "counters")
	var attempts, conflicts atomic.Int64
	bus := command.New(st, command.WithMiddleware(
		command.Retry(20, backoff),
		// Inside Retry, so it sees every attempt.
		command.Observe(func(_ any, _ time.Duration, err error) {
			attempts.Add(1)
			if errors.Is(err, store.ErrConflict) {
				conflicts.Add(1)
			}
		}),
	))
	registerIncrement(bus, counters, func() { time.Sleep(time.Millisecond) }, nil)

	start := make(chan struct{})
	var wg sync.WaitGroup
	for range increments {
		wg.Go(func() {
			<-start
			_, err := command.Dispatch(ctx, bus, Increment{Key: "hot"})
			assert.NoError(t, err)
		})
	}
	close(start)
	wg.Wait()
	t.Logf("%d increments took %d attempts (%d conflicts)", increments, attempts.Load(), conflicts.Load())
	assert.Positive(t, conflicts.Load(), "the increments should have collided")
	assert.EqualValues(t, increments, attempts.Load()-conflicts.Load(), "exactly one attempt wins per version")

	var final counter
	var ver uint64
	_, err := st.Update(ctx, func(tx store.Tx) error {
		var err error
		final, ver, err = counters.Get(tx, "hot")
		return err
	})
	require.NoError(t, err)
	assert.Equal(t, increments, final.N)
	assert.EqualValues(t, increments, ver)

	recs := readUntil(t, st, increments)
	for i, r := range recs {
		assert.EqualValues(t, i+1, r.Version)
		assert.Equal(t, Incremented{Key: "hot", N: i + 1}, r.Data)
	}
}
