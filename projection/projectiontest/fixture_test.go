package projectiontest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/projection/projectiontest"
)

// recorder is a TB that records failures instead of failing.
type recorder struct {
	errs, fatals []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
}

type collect struct{ recs []event.Record }

func (c *collect) Handle(_ context.Context, rec event.Record) error {
	c.recs = append(c.recs, rec)
	return nil
}

func TestRecordsLookCommitted(t *testing.T) {
	var c collect
	t0 := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)
	md := event.Metadata{CorrelationID: "corr", UserID: "u1"}
	f := projectiontest.Given(t, &c,
		Reviewed{Stars: 1},
		projectiontest.On("product/p1", Reviewed{Stars: 2}),
		projectiontest.At(t0, projectiontest.On("product/p1", Reviewed{Stars: 3})),
		projectiontest.WithMetadata(md, projectiontest.On("product/p2", Reviewed{Stars: 4})),
	)
	if f.Position() != 4 || len(c.recs) != 4 {
		t.Fatalf("Position %v, %d records; want 4, 4", f.Position(), len(c.recs))
	}
	type want struct {
		stream  string
		version uint64
		at      time.Time
		stars   int
	}
	epoch := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	wants := []want{
		{projectiontest.DefaultStream, 1, epoch, 1},
		{"product/p1", 1, epoch.Add(time.Second), 2},
		{"product/p1", 2, t0, 3},
		{"product/p2", 1, t0.Add(time.Second), 4},
	}
	for i, w := range wants {
		rec := c.recs[i]
		e, ok := rec.Data.(Reviewed)
		if !ok {
			t.Fatalf("record %d: Data is %T, want the unwrapped Reviewed", i, rec.Data)
		}
		if rec.Position != event.Position(i+1) || rec.Stream != w.stream || rec.Version != w.version ||
			!rec.Time.Equal(w.at) || e.Stars != w.stars || rec.Type != "catalog.reviewed" {
			t.Errorf("record %d = %+v, want %+v", i, rec, w)
		}
	}
	if c.recs[3].Metadata != md {
		t.Errorf("metadata = %+v, want %+v", c.recs[3].Metadata, md)
	}
	var c2 collect
	projectiontest.Given(t, &c2, Reviewed{Stars: 9})
	if c2.recs[0].ID != c.recs[0].ID {
		t.Errorf("IDs differ between fixtures for the same position")
	}
	if c.recs[0].ID == c.recs[1].ID {
		t.Errorf("IDs repeat within a fixture")
	}
	if got := f.Records(); len(got) != 4 || got[2].Position != 3 {
		t.Errorf("Records() = %v", got)
	}
}

func TestFailuresAreReported(t *testing.T) {
	boom := errors.New("boom")
	h := event.HandlerFunc(func(_ context.Context, rec event.Record) error {
		switch rec.Data.(Reviewed).Stars {
		case 0:
			return boom
		case -1:
			panic("negative stars")
		}
		return nil
	})
	var r recorder
	f := projectiontest.Given(&r, h, Reviewed{Stars: 1}, Reviewed{Stars: 0})
	if len(r.fatals) != 1 || !strings.Contains(r.fatals[0], "boom") || !strings.Contains(r.fatals[0], "position 2") {
		t.Errorf("fatals = %q, want one naming the error and position 2", r.fatals)
	}
	if err := f.Try(Reviewed{Stars: 0}); !errors.Is(err, boom) {
		t.Errorf("Try = %v, want boom", err)
	}
	if err := f.Try(Reviewed{Stars: -1}); !errors.Is(err, event.ErrPanic) {
		t.Errorf("Try of a panicking event = %v, want ErrPanic", err)
	}
	if f.Position() != 4 {
		t.Errorf("Position = %v, want 4: failed events still take a position", f.Position())
	}
	f.Then("ok", 1, 1).Then("slice", []int{1}, []int{2})
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "slice") {
		t.Errorf("errs = %q, want one for slice", r.errs)
	}
}

// shadowView is a Rebuilder over a map behind an atomic pointer; leaky makes
// its shadow write into the live map, which Rebuild must catch.
type shadowView struct {
	cur   atomic.Pointer[map[string]int]
	mu    sync.Mutex
	leaky bool
}

func newShadowView() *shadowView {
	v := &shadowView{}
	v.cur.Store(&map[string]int{})
	return v
}

func (v *shadowView) Handle(_ context.Context, rec event.Record) error {
	return v.apply(v.cur.Load(), rec)
}

func (v *shadowView) apply(m *map[string]int, rec event.Record) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	(*m)[rec.Stream] += rec.Data.(Reviewed).Stars
	return nil
}

func (v *shadowView) Shadow(context.Context) (projection.Shadow, error) {
	m := &map[string]int{}
	target := m
	if v.leaky {
		target = v.cur.Load()
	}
	return projection.Shadow{
		Handler: event.HandlerFunc(func(_ context.Context, rec event.Record) error { return v.apply(target, rec) }),
		Swap:    func() { v.cur.Store(m) },
	}, nil
}

func (v *shadowView) snapshot() any {
	v.mu.Lock()
	defer v.mu.Unlock()
	return maps.Clone(*v.cur.Load())
}

func TestRebuildCheck(t *testing.T) {
	v := newShadowView()
	projectiontest.Given(t, v,
		projectiontest.On("a", Reviewed{Stars: 1}),
		projectiontest.On("b", Reviewed{Stars: 2}),
		projectiontest.On("a", Reviewed{Stars: 3}),
	).Rebuild(v.snapshot).
		When(projectiontest.On("a", Reviewed{Stars: 10})).
		Then("a after rebuild", v.snapshot(), any(map[string]int{"a": 14, "b": 2}))

	var r recorder
	bad := newShadowView()
	bad.leaky = true
	projectiontest.Given(&r, bad, Reviewed{Stars: 1}).Rebuild(bad.snapshot)
	if len(r.errs) == 0 || !strings.Contains(r.errs[0], "changed the live view") {
		t.Errorf("a shadow writing into the live view was not reported: %q", r.errs)
	}

	r = recorder{}
	projectiontest.Given(&r, &collect{}, Reviewed{Stars: 1}).Rebuild(func() any { return nil })
	if len(r.fatals) != 1 || !strings.Contains(r.fatals[0], "Rebuilder") {
		t.Errorf("a non-Rebuilder was not reported: %q", r.fatals)
	}
}
