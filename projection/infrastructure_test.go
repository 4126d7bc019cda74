package projection_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// flaky fails with err for its first n calls on each record it has not
// applied yet, then applies it.
type flaky struct {
	name    string
	err     error
	left    atomic.Int64
	mu      sync.Mutex
	applied []event.Position
}

func (f *flaky) Name() string { return f.name }

func (f *flaky) Handle(_ context.Context, rec event.Record) error {
	if f.left.Add(-1) >= 0 {
		return f.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, rec.Position)
	return nil
}

func (f *flaky) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applied)
}

// TestInfrastructureFailuresAreRetriedNotParked: a projector whose store
// is down (ErrUnavailable) is retried with backoff for as long as it lasts,
// shows state Unavailable meanwhile, and never parks or stops.
func TestInfrastructureFailuresAreRetriedNotParked(t *testing.T) {
	for _, policy := range []projection.Policy{projection.Park, projection.Stop} {
		t.Run(policy.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				st := store.NewMemory()
				defer st.Close()
				f := &flaky{name: "f", err: fmt.Errorf("dial: %w", store.ErrUnavailable)}
				f.left.Store(20) // far more than the attempts: an outage of many seconds
				r := projection.NewRunner(st)
				add(t, r, f, projection.AsAsync(), projection.WithPolicy(policy), projection.WithRetry(3, nil))
				require.NoError(t, r.Start(ctx))
				defer r.Close()
				head := appendN(t, st, 3, 3)
				time.Sleep(time.Second)
				s := statusOf(t, r, "f")
				assert.EqualValues(t, projection.Unavailable, s.State, "during the outage: state %v, err %v; want unavailable with the cause", s.State, s.Err)
				assert.ErrorIs(t, s.Err, store.ErrUnavailable, "during the outage: state %v, err %v; want unavailable with the cause", s.State, s.Err)
				began := time.Now()
				wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				defer cancel()
				require.NoError(t, r.WaitFor(wctx, "f", head))
				if d := time.Since(began); d > time.Minute {
					t.Errorf("recovery took %v of fake time", d)
				}
				s = statusOf(t, r, "f")
				assert.EqualValues(t, projection.Running, s.State, "after the outage: %+v, applied %d; want running, nothing parked, 3 applied", s, f.count())
				assert.EqualValues(t, 0, s.Parked, "after the outage: %+v, applied %d; want running, nothing parked, 3 applied", s, f.count())
				assert.Nil(t, s.Err, "after the outage: %+v, applied %d; want running, nothing parked, 3 applied", s, f.count())
				assert.EqualValues(t, 3, f.count(), "after the outage: %+v, applied %d; want running, nothing parked, 3 applied", s, f.count())
			})
		})
	}
}

var errFlakyNetwork = errors.New("my network blip")

// TestWithClassifier lets a projector call its own error infrastructure.
func TestWithClassifier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		defer st.Close()
		f := &flaky{name: "f", err: errFlakyNetwork}
		f.left.Store(10)
		r := projection.NewRunner(st)
		add(t, r, f, projection.WithRetry(1, nil),
			projection.WithClassifier(func(err error) bool { return errors.Is(err, errFlakyNetwork) }))
		require.NoError(t, r.Start(context.Background()))
		defer r.Close()
		head := appendN(t, st, 2, 1)
		require.NoError(t, r.Sync(context.Background(), head))
		assert.EqualValues(t, 2, f.count(), "applied %d, want 2", f.count())
	})
}
