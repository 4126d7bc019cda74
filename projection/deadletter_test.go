package projection_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/cqrskit/cqrs/projection"
)

func TestParkPolicy(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 10, 4)
	r := projection.NewRunner(st)
	v := newSumView("park")
	v.failAt.Store(5)
	add(t, r, v, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(2))
	start(t, r)

	waitFor(t, r, "park", 10)
	if got, want := v.Total(), sumTo(10)-5; got != want || v.Count() != 9 {
		t.Errorf("total %d count %d, want %d and 9: every other event applied", got, v.Count(), want)
	}
	parked, err := r.Parked("park")
	if err != nil || len(parked) != 1 {
		t.Fatalf("Parked = %v, %v; want one", parked, err)
	}
	if p := parked[0]; p.Record.Position != 5 || !errors.Is(p.Err, errFault) || p.Attempts != 2 || p.At.IsZero() {
		t.Errorf("parked = %+v", p)
	}
	if s := statusOf(t, r, "park"); s.Parked != 1 || s.State != projection.Running || s.Err != nil || s.Checkpoint != 10 || s.Policy != projection.Park {
		t.Errorf("status = %+v", s)
	}

	// Replay before the fix: still parked, with the new attempt counted.
	if err := r.Replay(ctx, "park", 5); !errors.Is(err, errFault) {
		t.Errorf("Replay before the fix = %v, want errFault", err)
	}
	if parked, _ := r.Parked("park"); len(parked) != 1 || parked[0].Attempts != 3 {
		t.Errorf("after a failed Replay: %+v", parked)
	}
	if err := r.Replay(ctx, "park", 6); !hasText(err, "no parked event") {
		t.Errorf("Replay of an unparked position = %v, want ErrNotParked", err)
	}

	v.failAt.Store(0)
	if err := r.Replay(ctx, "park", 5); err != nil {
		t.Fatalf("Replay after the fix: %v", err)
	}
	if parked, _ := r.Parked("park"); len(parked) != 0 {
		t.Errorf("still parked after Replay: %+v", parked)
	}
	if v.Total() != sumTo(10) || v.Count() != 10 {
		t.Errorf("after Replay total %d count %d", v.Total(), v.Count())
	}
	if !maps.Equal(v.Parts(), partsTo(10, 1)) {
		t.Errorf("parts %v", v.Parts())
	}
	applied := v.Applied()
	slices.Sort(applied)
	if len(slices.Compact(applied)) != 10 {
		t.Errorf("applied %v: want each of 1..10 once", v.Applied())
	}
	if statusOf(t, r, "park").Parked != 0 {
		t.Error("Status still counts a parked event")
	}
}

// A parked event survives a restart: the checkpoint is past it, but the
// dead letter is in the ParkStore and the record is read back from the log.
func TestParkedEventsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	st := newMemory(t)
	appendN(t, st, 10, 4)
	cps := &projection.MemoryCheckpoints{}
	v := newSumView("park")
	v.failAt.Store(5)
	r1 := projection.NewRunner(st, projection.WithCheckpoints(cps))
	add(t, r1, v, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(1))
	start(t, r1)
	waitFor(t, r1, "park", 10)
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	if dls, _ := cps.LoadParked(ctx, "park"); len(dls) != 1 || dls[0].Record.Position != 5 || dls[0].Err == nil {
		t.Fatalf("dead letters after close: %+v", dls)
	}

	r2 := projection.NewRunner(st, projection.WithCheckpoints(cps))
	add(t, r2, v, projection.AsAsync(), projection.WithPolicy(projection.Park), fast(1))
	start(t, r2)
	defer r2.Close()
	parked, err := r2.Parked("park")
	if err != nil || len(parked) != 1 || parked[0].Record.Position != 5 || parked[0].Record.Data != (added{N: 5}) {
		t.Fatalf("after restart Parked = %+v, %v", parked, err)
	}
	v.failAt.Store(0)
	if err := r2.Replay(ctx, "park", 5); err != nil {
		t.Fatal(err)
	}
	if dls, _ := cps.LoadParked(ctx, "park"); len(dls) != 0 {
		t.Errorf("dead letter kept after a successful Replay: %+v", dls)
	}
	if v.Total() != sumTo(10) {
		t.Errorf("total %d, want %d", v.Total(), sumTo(10))
	}
}

type failingParks struct {
	projection.MemoryCheckpoints
}

func (*failingParks) Park(context.Context, string, projection.DeadLetter) error {
	return errors.New("disk full")
}

// If the dead letter cannot be stored, the projector stops at the event
// rather than move its checkpoint past an event recorded nowhere.
func TestParkFailureStopsInsteadOfLosing(t *testing.T) {
	st := newMemory(t)
	appendN(t, st, 10, 10)
	v := newSumView("park")
	v.failAt.Store(5)
	r := projection.NewRunner(st, projection.WithCheckpoints(&failingParks{}))
	add(t, r, v, projection.WithPolicy(projection.Park), fast(1))
	err := r.Start(context.Background())
	defer r.Close()
	var se *projection.StoppedError
	if !errors.As(err, &se) || se.Position != 5 {
		t.Fatalf("Start = %v, want a stop at 5", err)
	}
	if s := statusOf(t, r, "park"); s.State != projection.Stopped || s.Checkpoint != 4 {
		t.Errorf("status = %+v", s)
	}
}
