package faults_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
)

// TestUnknownTypeMidBatch writes events with a registry that knows Novel
// (a newer writer) and reads them with one that does not (an older reader,
// as in a rolling deploy). The good records before the unknown one must be
// applied; with Stop the projector stops at the unknown record with
// event.ErrUnknownType in Status; with Park it parks it and goes on.
func TestUnknownTypeMidBatch(t *testing.T) {
	for _, policy := range []projection.Policy{projection.Stop, projection.Park} {
		t.Run(policy.String(), func(t *testing.T) { unknownType(t, policy) })
	}
}

func unknownType(t *testing.T, policy projection.Policy) {
	pool := newPool(t, 8)
	schema := newSchema(t, pool)
	writer := newStore(t, pool, registry(t, true), schema)
	reader := newStore(t, pool, registry(t, false), schema)

	var good []event.Position
	for i := range 5 {
		good = append(good, record(t, writer, Tick{Seq: i}))
	}
	bad := record(t, writer, Novel{N: 1})
	var after []event.Position
	for i := 5; i < 8; i++ {
		after = append(after, record(t, writer, Tick{Seq: i}))
	}

	view := newMemView()
	r := projection.NewRunner(reader, projection.WithCheckpoints(reader))
	h := event.HandlerFunc(func(_ context.Context, rec event.Record) error { view.add(rec.Position); return nil })
	if err := r.Add(projection.Named("view", h), projection.AsAsync(), projection.WithPolicy(policy)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	want := good[len(good)-1]
	if policy == projection.Park {
		want = after[len(after)-1]
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	waitErr := r.WaitFor(wctx, "view", want)
	wcancel()
	if waitErr != nil {
		t.Errorf("WaitFor(%v): %v", want, waitErr)
	}
	// Let a stopping projector settle at the bad record.
	var s projection.Status
	settle := time.Now().Add(5 * time.Second)
	for {
		var err error
		s, err = r.StatusOf(ctx, "view")
		if err != nil {
			t.Fatal(err)
		}
		if policy == projection.Park || s.State == projection.Stopped || time.Now().After(settle) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	applied := view.snapshot()
	appliedGood := 0
	for _, p := range good {
		appliedGood += min(applied[p], 1)
	}
	parked, _ := r.Parked("view")
	t.Logf("status: state=%v checkpoint=%v (bad at %v) head=%v err=%v; parked %d", s.State, s.Checkpoint, bad, s.Head, s.Err, len(parked))
	summary(t, "unknown-type-"+policy.String(), "written", len(good)+1+len(after), "applied", len(applied),
		"good_before_applied", appliedGood, "state", `"`+s.State.String()+`"`, "err_unknown_type", errors.Is(s.Err, event.ErrUnknownType),
		"parked", len(parked))

	if appliedGood != len(good) {
		t.Errorf("applied %d of the %d good records before the unknown one", appliedGood, len(good))
	}
	if !errors.Is(s.Err, event.ErrUnknownType) && policy == projection.Stop {
		t.Errorf("Status.Err = %v, want event.ErrUnknownType", s.Err)
	}
	switch policy {
	case projection.Stop:
		if s.State != projection.Stopped {
			t.Errorf("state %v, want stopped", s.State)
		}
		if s.Checkpoint != good[len(good)-1] {
			t.Errorf("checkpoint %v, want %v (the record before the unknown one at %v)", s.Checkpoint, good[len(good)-1], bad)
		}
		if se, ok := errorsAs[*projection.StoppedError](s.Err); !ok || se.Position != bad {
			t.Errorf("Status.Err %v: want a *StoppedError at %v", s.Err, bad)
		}
		for _, p := range after {
			if applied[p] != 0 {
				t.Errorf("applied %v after the unknown record", p)
			}
		}
		wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := r.WaitFor(wctx, "view", bad)
		wcancel()
		if !errors.Is(err, projection.ErrNotReached) || !errors.Is(err, projection.ErrStopped) || !errors.Is(err, event.ErrUnknownType) {
			t.Errorf("WaitFor(%v) past the unknown record: %v, want ErrNotReached with the stop and event.ErrUnknownType as cause", bad, err)
		}
	case projection.Park:
		if len(parked) != 1 || parked[0].Record.Position != bad {
			t.Errorf("parked %v, want the record at %v", parked, bad)
		}
		for _, p := range after {
			if applied[p] != 1 {
				t.Errorf("record %v after the parked one applied %d times, want 1", p, applied[p])
			}
		}
	}
}
