package projectiontest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
)

// bigPosition is above 1<<63: stores that keep positions as signed 64-bit
// integers must still round-trip it and sort it last.
const bigPosition = event.Position(1<<63 + 5)

// testParkStore runs the projection.ParkStore subtests of RunCheckpointStore.
// Times are given at microsecond precision (PostgreSQL's), in a zone other
// than UTC, and compared with time.Equal.
func testParkStore(t *testing.T, newStore func(t *testing.T) projection.CheckpointStore) {
	ctx := context.Background()
	newPS := func(t *testing.T) projection.ParkStore {
		t.Helper()
		ps, ok := newStore(t).(projection.ParkStore)
		if !ok {
			t.Fatal("newStore returned a store that does not implement projection.ParkStore, unlike the first one")
		}
		return ps
	}
	t0 := time.Date(2024, 3, 1, 12, 30, 15, 123456000, time.FixedZone("UTC+2", 2*60*60))
	dl := func(pos event.Position, msg string, attempts int) projection.DeadLetter {
		return projection.DeadLetter{Record: event.Record{Position: pos}, Err: errOf(msg), Attempts: attempts, At: t0.Add(time.Duration(pos%1000) * time.Millisecond)}
	}
	park := func(t *testing.T, ps projection.ParkStore, name string, d projection.DeadLetter) {
		t.Helper()
		if err := ps.Park(ctx, name, d); err != nil {
			t.Fatalf("Park(%q, %v): %v", name, d.Record.Position, err)
		}
	}
	unpark := func(t *testing.T, ps projection.ParkStore, name string, pos event.Position) {
		t.Helper()
		if err := ps.Unpark(ctx, name, pos); err != nil {
			t.Fatalf("Unpark(%q, %v): %v", name, pos, err)
		}
	}
	replace := func(t *testing.T, ps projection.ParkStore, name string, dls []projection.DeadLetter) {
		t.Helper()
		if err := ps.ReplaceParked(ctx, name, dls); err != nil {
			t.Fatalf("ReplaceParked(%q, %d dead letters): %v", name, len(dls), err)
		}
	}
	// expect fails the test unless name's list is want, in that order.
	expect := func(t *testing.T, ps projection.ParkStore, name string, want ...projection.DeadLetter) {
		t.Helper()
		got, err := ps.LoadParked(ctx, name)
		if err != nil {
			t.Fatalf("LoadParked(%q): %v", name, err)
		}
		if !sameDeadLetters(got, want) {
			t.Errorf("LoadParked(%q) =\n%s\nwant\n%s", name, formatDeadLetters(got), formatDeadLetters(want))
		}
	}

	t.Run("UnknownIsEmpty", func(t *testing.T) {
		ps := newPS(t)
		expect(t, ps, "never-parked")
	})

	t.Run("RoundTrip", func(t *testing.T) {
		ps := newPS(t)
		want := projection.DeadLetter{
			Record:   event.Record{Position: 42},
			Err:      errors.New("apply: price of \"p1\" < 0: ungültig ✗\n\tsecond line"),
			Attempts: 3,
			At:       t0,
		}
		park(t, ps, "p", want)
		expect(t, ps, "p", want)
		edge := projection.DeadLetter{Record: event.Record{Position: bigPosition}, Err: nil, Attempts: 1, At: time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC)}
		park(t, ps, "edge", edge)
		expect(t, ps, "edge", edge)

		got, err := ps.LoadParked(ctx, "p")
		if err != nil {
			t.Fatalf("LoadParked: %v", err)
		}
		if len(got) == 1 {
			got[0].Err = errors.New("changed by the caller") // the result is the caller's
		}
		expect(t, ps, "p", want)
	})

	t.Run("ParkTwiceReplaces", func(t *testing.T) {
		ps := newPS(t)
		park(t, ps, "p", dl(5, "first failure", 3))
		second := projection.DeadLetter{Record: event.Record{Position: 5}, Err: errors.New("second failure"), Attempts: 4, At: t0.Add(time.Hour)}
		park(t, ps, "p", second)
		expect(t, ps, "p", second)
	})

	t.Run("PositionOrder", func(t *testing.T) {
		ps := newPS(t)
		var want []projection.DeadLetter
		for _, pos := range []event.Position{30, bigPosition, 10, 1, 1 << 40, 20} {
			d := dl(pos, fmt.Sprintf("failed at %v", pos), 2)
			park(t, ps, "p", d)
			want = append(want, d)
		}
		slices.SortFunc(want, func(a, b projection.DeadLetter) int { return cmp.Compare(a.Record.Position, b.Record.Position) })
		expect(t, ps, "p", want...)
	})

	t.Run("Unpark", func(t *testing.T) {
		ps := newPS(t)
		unpark(t, ps, "p", 7) // nothing parked anywhere yet
		a, b, c := dl(1, "a", 1), dl(2, "b", 1), dl(3, "c", 1)
		park(t, ps, "p", a)
		park(t, ps, "p", b)
		park(t, ps, "p", c)
		unpark(t, ps, "p", 2)
		expect(t, ps, "p", a, c)
		unpark(t, ps, "p", 2) // already gone
		unpark(t, ps, "p", 9) // never parked
		unpark(t, ps, "other", 1)
		expect(t, ps, "p", a, c)
		unpark(t, ps, "p", 1)
		unpark(t, ps, "p", 3)
		expect(t, ps, "p")
		park(t, ps, "p", b) // parking again after emptying works
		expect(t, ps, "p", b)
	})

	t.Run("ReplaceParked", func(t *testing.T) {
		ps := newPS(t)
		replace(t, ps, "fresh", []projection.DeadLetter{dl(4, "x", 1)}) // a name never parked
		expect(t, ps, "fresh", dl(4, "x", 1))

		park(t, ps, "p", dl(1, "old", 3))
		park(t, ps, "p", dl(2, "old", 3))
		park(t, ps, "p", dl(20, "old", 3))
		in := []projection.DeadLetter{dl(30, "new", 1), dl(10, "new", 2), dl(20, "new", 3)}
		replace(t, ps, "p", in)
		want := []projection.DeadLetter{dl(10, "new", 2), dl(20, "new", 3), dl(30, "new", 1)}
		expect(t, ps, "p", want...)
		in[0].Err = errors.New("changed by the caller") // the store keeps no reference to it
		expect(t, ps, "p", want...)

		replace(t, ps, "p", []projection.DeadLetter{})
		expect(t, ps, "p")
		park(t, ps, "p", dl(5, "after", 1))
		replace(t, ps, "p", nil)
		expect(t, ps, "p")
		expect(t, ps, "fresh", dl(4, "x", 1))
	})

	t.Run("NamesIndependent", func(t *testing.T) {
		ps := newPS(t)
		a1, a2, b1 := dl(1, "a1", 1), dl(2, "a2", 1), dl(1, "b1", 7)
		park(t, ps, "a", a1)
		park(t, ps, "b", b1)
		park(t, ps, "a", a2)
		expect(t, ps, "a", a1, a2)
		expect(t, ps, "b", b1)
		expect(t, ps, "ab")
		unpark(t, ps, "b", 1)
		expect(t, ps, "a", a1, a2)
		expect(t, ps, "b")
		park(t, ps, "b", b1)
		replace(t, ps, "a", nil)
		expect(t, ps, "a")
		expect(t, ps, "b", b1)
	})

	t.Run("IndependentOfCheckpoints", func(t *testing.T) {
		ps := newPS(t)
		cs := ps.(projection.CheckpointStore)
		d := dl(3, "parked before any checkpoint", 3)
		park(t, ps, "p", d)
		cp := projection.Checkpoint{Position: 10, Version: 2}
		if err := cs.Save(ctx, "p", cp); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if err := cs.Save(ctx, "p", projection.Checkpoint{Position: 12, Version: 3}); err != nil { // as a rebuild does
			t.Fatalf("Save: %v", err)
		}
		expect(t, ps, "p", d)
		replace(t, ps, "p", nil)
		if got, err := cs.Load(ctx, "p"); err != nil || got != (projection.Checkpoint{Position: 12, Version: 3}) {
			t.Errorf("Load after ReplaceParked = %+v, %v; want the saved checkpoint", got, err)
		}
	})

	t.Run("ConcurrentParks", func(t *testing.T) {
		ps := newPS(t)
		const writers, parks = 8, 20
		var wg sync.WaitGroup
		errs := make(chan error, 2*writers)
		for w := range writers {
			wg.Go(func() {
				own := fmt.Sprintf("proj-%d", w)
				for i := 1; i <= parks; i++ {
					pos := event.Position(1000*w + i)
					if err := ps.Park(ctx, own, dl(pos, own, i)); err != nil {
						errs <- fmt.Errorf("Park(%s): %w", own, err)
						return
					}
					if err := ps.Park(ctx, "shared", dl(pos, own, i)); err != nil {
						errs <- fmt.Errorf("Park(shared): %w", err)
						return
					}
					if _, err := ps.LoadParked(ctx, "shared"); err != nil {
						errs <- fmt.Errorf("LoadParked(shared): %w", err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		var shared []projection.DeadLetter
		for w := range writers {
			own := fmt.Sprintf("proj-%d", w)
			var want []projection.DeadLetter
			for i := 1; i <= parks; i++ {
				want = append(want, dl(event.Position(1000*w+i), own, i))
			}
			expect(t, ps, own, want...)
			shared = append(shared, want...)
		}
		expect(t, ps, "shared", shared...)
	})

	t.Run("CancelledContext", func(t *testing.T) {
		ps := newPS(t)
		a, b := dl(1, "a", 1), dl(2, "b", 1)
		park(t, ps, "p", a)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		check := func(op string, err error) bool {
			t.Helper()
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: %v, want nil or an error matching context.Canceled", op, err)
			}
			return err == nil
		}

		if got, err := ps.LoadParked(cctx, "p"); check("LoadParked", err) && !sameDeadLetters(got, []projection.DeadLetter{a}) {
			t.Errorf("LoadParked with a cancelled context (no error) =\n%s\nwant\n%s", formatDeadLetters(got), formatDeadLetters([]projection.DeadLetter{a}))
		}
		want := []projection.DeadLetter{a}
		if check("Park", ps.Park(cctx, "p", b)) {
			want = append(want, b)
		}
		expect(t, ps, "p", want...) // a failed call must not have written
		if check("Unpark", ps.Unpark(cctx, "p", 1)) {
			want = want[1:]
		}
		expect(t, ps, "p", want...)
		if check("ReplaceParked", ps.ReplaceParked(cctx, "p", nil)) {
			want = nil
		}
		expect(t, ps, "p", want...)
	})
}

func sameDeadLetters(got, want []projection.DeadLetter) bool {
	return slices.EqualFunc(got, want, func(g, w projection.DeadLetter) bool {
		return g.Record.Position == w.Record.Position && errText(g.Err) == errText(w.Err) && g.Attempts == w.Attempts && g.At.Equal(w.At)
	})
}

func formatDeadLetters(dls []projection.DeadLetter) string {
	if len(dls) == 0 {
		return "\t(none)"
	}
	var b strings.Builder
	for i, d := range dls {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "\t%v: err %q, attempts %d, at %s", d.Record.Position, errText(d.Err), d.Attempts, d.At.Format(time.RFC3339Nano))
	}
	return b.String()
}

// errOf is the error a ParkStore returns for the stored text msg.
func errOf(msg string) error {
	if msg == "" {
		return nil
	}
	return errors.New(msg)
}

// errText is the text a ParkStore stores for err.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
