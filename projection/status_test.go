package projection_test

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

func TestStatusLag(t *testing.T) {
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
	if s.State != projection.Idle || s.Checkpoint != 0 || s.Behind != 10 || s.TimeBehind != 9*time.Minute {
		t.Errorf("before Start: %+v", s)
	}
	start(t, r)
	eventually(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
	waitFor(t, r, "ok", 10)
	check := func(when string) {
		t.Helper()
		all, err := r.Status(ctx)
		if err != nil || len(all) != 2 {
			t.Fatalf("Status: %v, %v", all, err)
		}
		s := all[0]
		if s.Name != "v" || s.Checkpoint != 5 || s.Head != 10 || s.Behind != 5 || s.TimeBehind != 5*time.Minute {
			t.Errorf("%s: stopped projector %+v; want checkpoint 5, behind 5 and 5m", when, s)
		}
		if ok := all[1]; ok.Behind != 0 || ok.TimeBehind != 0 || ok.State != projection.Running {
			t.Errorf("%s: healthy projector %+v", when, ok)
		}
	}
	check("first run")
	r.Close()
	if s := statusOf(t, r, "v"); s.State != projection.Closed {
		t.Errorf("after Close state %v", s.State)
	}

	// After a restart nothing has been applied in this process; the lag
	// must still be measured from the checkpoint.
	r, _ = run()
	start(t, r)
	eventually(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
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

func TestLoggingStaysOffTheHotPath(t *testing.T) {
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
		if _, err := command.Dispatch(ctx, bus, addCmd{Stream: "s", N: i}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, r, "async", 50)
	waitFor(t, r, "park", 50)
	eventually(t, "stopped", func() bool { return statusOf(t, r, "stop").State == projection.Stopped })
	want := map[slog.Level]int{slog.LevelWarn: 1, slog.LevelError: 1} // one park, one stop
	if got := h.counts(); !maps.Equal(got, want) {
		t.Errorf("log records by level = %v, want %v", got, want)
	}
	if err := r.Rebuild(ctx, "async"); err != nil {
		t.Fatal(err)
	}
	if got := h.counts()[slog.LevelInfo]; got != 1 {
		t.Errorf("%d info records after a rebuild, want 1", got)
	}
}
