package projection_test

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusLag(t *testing.T) { synctest.Test(t, testStatusLag) }

func testStatusLag(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var tick atomic.Int64
	st := newMemory(t, store.WithClock(func() time.Time {
		return t0.Add(time.Duration(tick.Add(1)) * time.Minute) // event k commits at t0+k min
	}))
	appendN(t, st, 10, 1)
	cps := &projection.MemoryCheckpoints{}

	run := func() (*projection.Runner, *sumView) {
		r := projection.NewRunner(st, projection.WithCheckpoints(cps))
		v := newSumView("v")
		v.failAt.Store(6)
		add(t, r, v, projection.AsAsync(), fast(1))
		add(t, r, newSumView("ok"), projection.AsAsync())
		return r, v
	}
	r, _ := run()
	s := statusOf(t, r, "v")
	assert.Equal(t, projection.Idle, s.State, "before Start")
	assert.Equal(t, event.Position(0), s.Checkpoint)
	assert.EqualValues(t, 10, s.Behind)
	assert.Equal(t, 9*time.Minute, s.TimeBehind)
	start(t, r)
	settled(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
	waitFor(t, r, "ok", 10)
	check := func(when string) {
		t.Helper()
		all, err := r.Status(ctx)
		require.NoError(t, err)
		require.Len(t, all, 2)
		s := all[0]
		assert.Equal(t, "v", s.Name, when)
		assert.Equal(t, event.Position(5), s.Checkpoint, when)
		assert.Equal(t, event.Position(10), s.Head, when)
		assert.EqualValues(t, 5, s.Behind, when)
		assert.Equal(t, 5*time.Minute, s.TimeBehind, when)
		ok := all[1]
		assert.Zero(t, ok.Behind, when)
		assert.Zero(t, ok.TimeBehind, when)
		assert.Equal(t, projection.Running, ok.State, when)
	}
	check("first run")
	require.NoError(t, r.Close())
	assert.Equal(t, projection.Closed, statusOf(t, r, "v").State, "after Close")

	// After a restart nothing has been applied in this process; the lag
	// must still be measured from the checkpoint.
	r, _ = run()
	start(t, r)
	settled(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
	check("after restart")
}

// countHandler counts slog records by level.
type countHandler struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[r.Level]++
	return nil
}

func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h *countHandler) WithGroup(string) slog.Handler { return h }

func (h *countHandler) counts() map[slog.Level]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.n)
}

func TestLoggingStaysOffTheHotPath(t *testing.T) { synctest.Test(t, testLoggingStaysOffTheHotPath) }

func testLoggingStaysOffTheHotPath(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	h := &countHandler{n: map[slog.Level]int{}}
	r := projection.NewRunner(st, projection.WithLogger(slog.New(h)))
	park, stop := newSumView("park"), newSumView("stop")
	park.failAt.Store(3)
	stop.failAt.Store(7)
	add(t, r, newSumView("inline"))
	add(t, r, newSumView("async"), projection.AsAsync())
	add(t, r, park, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(1))
	add(t, r, stop, projection.AsAsync(), fast(1))
	start(t, r)
	bus := newBus(st, r)
	for i := 1; i <= 50; i++ {
		_, err := command.Dispatch(ctx, bus, addCmd{Stream: "s", N: i})
		require.NoError(t, err)
	}
	waitFor(t, r, "async", 50)
	waitFor(t, r, "park", 50)
	settled(t, "stopped", func() bool { return statusOf(t, r, "stop").State == projection.Stopped })
	want := map[slog.Level]int{slog.LevelWarn: 1, slog.LevelError: 1} // one park, one stop
	assert.Equal(t, want, h.counts(), "log records by level")
	require.NoError(t, r.Rebuild(ctx, "async"))
	assert.Equal(t, 1, h.counts()[slog.LevelInfo], "info records after a rebuild")
}
