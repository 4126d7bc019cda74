package projection_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAsyncCatchesUpThenFollows(t *testing.T) {
	st := newMemory(t)
	appendN(t, st, 1000, 100)
	r := projection.NewRunner(st, projection.WithBatchSize(64))
	v := newSumView("sum")
	add(t, r, v, projection.AsAsync())
	start(t, r)

	waitFor(t, r, "sum", 1000)
	got := v.Total()
	require.EqualValues(t, sumTo(1000), got, "after catch-up total = %d, want %d", got, sumTo(1000))
	// Following: every commit is picked up without polling.
	for range 20 {
		waitFor(t, r, "sum", appendN(t, st, 1, 1))
	}
	// A burst from several writers.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				if _, err := st.Update(context.Background(), func(tx store.Tx) error {
					tx.Record("burst", added{N: 1})
					return nil
				}); err != nil {
					assert.NoError(t, err)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, r, "sum", 1120)
	got, want := v.Total(), sumTo(1020)+100
	assert.EqualValues(t, want, got, "total = %d, want %d", got, want)
	got = v.Count()
	assert.EqualValues(t, 1120, got, "count = %d, want 1120", got)
	v.checkApplied(t)
	s := statusOf(t, r, "sum")
	assert.EqualValues(t, projection.Running, s.State, "status = %+v", s)
	assert.EqualValues(t, 1120, s.Checkpoint, "status = %+v", s)
	assert.EqualValues(t, 1120, s.Head, "status = %+v", s)
	assert.EqualValues(t, 0, s.Behind, "status = %+v", s)
	assert.EqualValues(t, 0, s.TimeBehind, "status = %+v", s)
	assert.Nil(t, s.Err, "status = %+v", s)
	assert.EqualValues(t, projection.Async, s.Mode, "status = %+v", s)
}

// gapLog is a contiguous-claiming log with a hole at position 3.
type gapLog struct {
	recs       []event.Record
	contiguous bool
}

var (
	_ store.Log        = (*gapLog)(nil)
	_ store.Contiguous = (*gapLog)(nil)
)

func newGapLog(contiguous bool) *gapLog {
	l := &gapLog{contiguous: contiguous}
	for _, p := range []event.Position{1, 2, 4, 5} {
		l.recs = append(l.recs, event.Record{Type: added{}.EventType(), Stream: "s", Position: p, Version: uint64(p), Time: time.Unix(int64(p), 0), Data: added{N: int(p)}})
	}
	return l
}

func (l *gapLog) Read(ctx context.Context, after event.Position, dst []event.Record) ([]event.Record, error) {
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	n := max(cap(dst)-len(dst), 1)
	for _, rec := range l.recs {
		if rec.Position > after && n > 0 {
			dst = append(dst, rec)
			n--
		}
	}
	return dst, nil
}

func (l *gapLog) Head(context.Context) (event.Position, error) {
	return l.recs[len(l.recs)-1].Position, nil
}

func (l *gapLog) Wait(ctx context.Context, after event.Position) error {
	if h, _ := l.Head(ctx); h > after {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (l *gapLog) Contiguous() bool { return l.contiguous }

func TestGapIsReportedNotJumped(t *testing.T) {
	ctx := context.Background()
	checkGap := func(t *testing.T, err error) {
		t.Helper()
		var ge *projection.GapError
		var se *projection.StoppedError
		require.ErrorAs(t, err, &ge, "err = %v, want a *StoppedError wrapping a *GapError", err)
		require.ErrorAs(t, err, &se, "err = %v, want a *StoppedError wrapping a *GapError", err)
		assert.EqualValues(t, 3, ge.Expected, "gap %+v at %v, want expected 3 got 4", ge, se.Position)
		assert.EqualValues(t, 4, ge.Got, "gap %+v at %v, want expected 3 got 4", ge, se.Position)
		assert.EqualValues(t, 3, se.Position, "gap %+v at %v, want expected 3 got 4", ge, se.Position)
	}
	t.Run("Async", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := projection.NewRunner(newGapLog(true))
			v := newSumView("v")
			add(t, r, v, projection.AsAsync())
			start(t, r)
			settled(t, "stopped", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
			s := statusOf(t, r, "v")
			checkGap(t, s.Err)
			assert.EqualValues(t, 2, s.Checkpoint, "checkpoint %v count %d, want 2, 2", s.Checkpoint, v.Count())
			assert.EqualValues(t, 2, v.Count(), "checkpoint %v count %d, want 2, 2", s.Checkpoint, v.Count())
			// Resume does not jump it either.
			require.NoError(t, r.Resume(ctx, "v"))
			settled(t, "stopped again", func() bool { return statusOf(t, r, "v").State == projection.Stopped })
			assert.EqualValues(t, 2, v.Count(), "count %d after Resume", v.Count())
			checkGap(t, r.Rebuild(ctx, "v"))
		})
	})
	t.Run("Inline", func(t *testing.T) {
		r := projection.NewRunner(newGapLog(true))
		add(t, r, newSumView("v"))
		err := r.Start(ctx)
		defer r.Close()
		checkGap(t, err)
	})
	t.Run("NotContiguous", func(t *testing.T) {
		r := projection.NewRunner(newGapLog(false))
		v := newSumView("v")
		add(t, r, v, projection.AsAsync())
		start(t, r)
		waitFor(t, r, "v", 5)
		assert.EqualValues(t, 4, v.Count(), "count %d, want 4", v.Count())
	})
}
