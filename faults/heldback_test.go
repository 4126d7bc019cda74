package faults_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// TestHeldBackOtherDatabase leaves a transaction open in another database
// of the cluster, which holds back the log's gap-safe horizon. Status must
// show the true head and name the blocking backend, WaitFor's error must
// carry the cause, and Dispatch with an inline projector must return early
// with it instead of waiting out its deadline.
func TestHeldBackOtherDatabase(t *testing.T) {
	url := faultURL(t)
	otherDB := os.Getenv(otherEnv)
	if otherDB == "" {
		t.Skip(otherEnv + " is not set (run faults/run.sh)")
	}
	pool := newPool(t, 8)
	schema := newSchema(t, pool)
	st := newStore(t, pool, registry(t, false), schema)

	inline, async := newMemView(), newMemView()
	r := projection.NewRunner(st, projection.WithCheckpoints(st))
	add := func(name string, v *memView, opts ...projection.AddOption) {
		h := event.HandlerFunc(func(_ context.Context, rec event.Record) error { v.add(rec.Position); return nil })
		if err := r.Add(projection.Named(name, h), opts...); err != nil {
			t.Fatal(err)
		}
	}
	add("inline", inline)
	add("async", async, projection.AsAsync())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	bus := newBus(st, command.WithSyncer(r))

	first, err := bus.Dispatch(ctx, TickCmd{Tick{Seq: 0}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitFor(ctx, "", first.Position); err != nil {
		t.Fatal(err)
	}

	// The blocker: a transaction with an xid, open in another database.
	ocfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	ocfg.Database = otherDB
	other, err := pgx.ConnectConfig(ctx, ocfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	otx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = otx.Rollback(context.Background()) }()
	if _, err := otx.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	blockerPID := int(other.PgConn().PID())

	const deadline = 10 * time.Second // the runner gives up once the blocker is 2 s old
	dctx, dcancel := context.WithTimeout(ctx, deadline)
	start := time.Now()
	res, dispatchErr := bus.Dispatch(dctx, TickCmd{Tick{Seq: 1}})
	dispatchTook := time.Since(start)
	dcancel()
	t.Logf("Dispatch on a held-back log: %v after %v: %v", res.Position, dispatchTook.Round(time.Millisecond), dispatchErr)

	const n = 20
	var last event.Position
	for i := range n {
		last = record(t, st, Tick{Seq: 2 + i})
	}

	// The async projector catches up to the readable horizon; its status
	// must then show the true head, the events behind and the blocker.
	var async0 projection.Status
	poll := time.Now().Add(5 * time.Second)
	for {
		async0, err = r.StatusOf(ctx, "async")
		if err != nil {
			t.Fatal(err)
		}
		if (async0.HeldBack != nil && async0.Head >= last) || time.Now().After(poll) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stats, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		t.Logf("status %s: state=%v checkpoint=%v head=%v behind=%d heldback=%+v err=%v", s.Name, s.State, s.Checkpoint, s.Head, s.Behind, s.HeldBack, s.Err)
	}
	checkHeldBack := func(what string, hb *store.HeldBack) {
		t.Helper()
		switch {
		case hb == nil:
			t.Errorf("%s: no HeldBack", what)
		case hb.PID != blockerPID || hb.Database != otherDB:
			t.Errorf("%s: held back by pid %d in %q, want pid %d in %q", what, hb.PID, hb.Database, blockerPID, otherDB)
		case hb.Age <= 0:
			t.Errorf("%s: blocker age %v", what, hb.Age)
		}
	}
	checkHeldBack("Status(async).HeldBack", async0.HeldBack)
	if async0.Head != last {
		t.Errorf("Status(async).Head = %v, want the newest committed position %v", async0.Head, last)
	}
	if async0.Behind != n+1 {
		t.Errorf("Status(async).Behind = %d events, want %d", async0.Behind, n+1)
	}

	wctx, wcancel := context.WithTimeout(ctx, time.Second)
	start = time.Now()
	waitErr := r.WaitFor(wctx, "async", last)
	waitTook := time.Since(start)
	wcancel()
	t.Logf("WaitFor(async) on a held-back log after %v: %v", waitTook.Round(time.Millisecond), waitErr)
	waitHB, waitHasCause := errorsAs[*store.HeldBackError](waitErr)
	switch {
	case !errors.Is(waitErr, projection.ErrNotReached):
		t.Errorf("WaitFor: %v, want ErrNotReached", waitErr)
	case !waitHasCause:
		t.Errorf("WaitFor's error %v does not carry a *store.HeldBackError", waitErr)
	default:
		checkHeldBack("WaitFor's HeldBackError", &waitHB.HeldBack)
		if !errors.Is(waitErr, store.ErrUnavailable) {
			t.Errorf("a HeldBackError must match store.ErrUnavailable: %v", waitErr)
		}
	}
	if waitTook > 2*time.Second {
		t.Errorf("WaitFor with a 1s deadline took %v", waitTook)
	}

	// Release the blocker: everything must arrive, nothing lost.
	if err := otx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	wctx, wcancel = context.WithTimeout(ctx, 10*time.Second)
	releaseErr := r.WaitFor(wctx, "", last)
	wcancel()
	recovered := time.Since(released)
	logged, err := logPositions(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	lostI, dupI := compare(logged, inline.snapshot())
	lostA, dupA := compare(logged, async.snapshot())
	summary(t, "heldback-otherdb", "written", len(logged), "lost", lostI+lostA, "duplicated", dupI+dupA, "parked", 0,
		"dispatch_took", dispatchTook.Round(time.Millisecond), "dispatch_deadline", deadline,
		"waitfor_cause", waitHasCause, "dispatch_cause", errors.As(dispatchErr, new(*store.HeldBackError)), "recover", recovered.Round(time.Millisecond))

	if releaseErr != nil {
		t.Errorf("after the blocker ended: %v", releaseErr)
	}
	if lostI+lostA+dupI+dupA != 0 {
		t.Errorf("inline lost %d dup %d; async lost %d dup %d", lostI, dupI, lostA, dupA)
	}
	if dispatchTook > deadline/2 {
		t.Errorf("Dispatch took %v of its %v deadline on a held-back log (want an early return); err %v", dispatchTook, deadline, dispatchErr)
	}
	if !errors.Is(dispatchErr, command.ErrAfterCommit) {
		t.Errorf("Dispatch: %v, want command.ErrAfterCommit (the command did commit)", dispatchErr)
	}
	if hb, ok := errorsAs[*store.HeldBackError](dispatchErr); !ok {
		t.Errorf("Dispatch's error %v does not carry a *store.HeldBackError", dispatchErr)
	} else {
		checkHeldBack("Dispatch's HeldBackError", &hb.HeldBack)
	}
	if s, err := r.StatusOf(ctx, "async"); err != nil || s.HeldBack != nil || s.Behind != 0 {
		t.Errorf("after the blocker ended: Status(async) HeldBack %+v, Behind %d, err %v", s.HeldBack, s.Behind, err)
	}
}
