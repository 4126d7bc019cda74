package faults_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// TestFrozenServer freezes every process of the server with SIGSTOP while
// an async SQL projector is catching up (a handler is in flight), and checks
// that WaitFor, Dispatch (with an inline projector), Status and the
// runner's Close each return within their deadline plus a small constant.
func TestFrozenServer(t *testing.T) {
	c := faultCluster(t)
	pool := newPool(t, 16)
	schema := newSchema(t, pool)
	st := newStore(t, pool, registry(t, false), schema)
	createApplied(t, pool, schema)
	ins := insertApplied(schema)

	// A backlog for the SQL projector to chew on when the server freezes.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var head event.Position
	for b := range 6 {
		pos, err := st.Update(ctx, func(tx store.Tx) error {
			for i := range 500 {
				tx.Record(fmt.Sprintf("s-%d", i%10), Tick{Writer: b, Seq: i})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		head = pos
	}

	sqlProj := pgstore.NewProjector(st, "sqlview", func(ctx context.Context, tx pgx.Tx, rec event.Record) error {
		_, err := tx.Exec(ctx, ins, int64(rec.Position))
		return err
	})
	inline := newMemView()
	const deadline = time.Second
	r := projection.NewRunner(st, projection.WithCheckpoints(st), projection.WithCloseTimeout(deadline))
	if err := r.Add(sqlProj, projection.AsAsync()); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(projection.Named("inline", event.HandlerFunc(func(_ context.Context, rec event.Record) error {
		inline.add(rec.Position)
		return nil
	}))); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	bus := newBus(st, command.WithSyncer(r))

	// Freeze once the SQL projector is busy.
	for {
		s, err := r.StatusOf(ctx, "sqlview")
		if err != nil {
			t.Fatal(err)
		}
		if s.Checkpoint > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the SQL projector never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	thaw := c.freeze(t)

	const bound = 2 * deadline // deadline + a small constant
	const watchdog = 8 * time.Second
	type result struct {
		call string
		took time.Duration
		err  error
		ok   bool
	}
	var results []result
	call := func(name string, fn func(ctx context.Context) error) {
		took, err, ok := timed(watchdog, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			return fn(ctx)
		})
		results = append(results, result{name, took, err, ok})
	}
	call("WaitFor", func(ctx context.Context) error { return r.WaitFor(ctx, "sqlview", head) })
	call("Dispatch", func(ctx context.Context) error {
		_, err := bus.Dispatch(ctx, TickCmd{Tick{Seq: -1}})
		return err
	})
	call("Status", func(ctx context.Context) error {
		_, err := r.Status(ctx)
		return err
	})
	call("Close", func(context.Context) error { return r.Close() }) // bounded by WithCloseTimeout
	thaw()

	line := []any{"deadline", deadline}
	for _, res := range results {
		took := res.took.Round(time.Millisecond).String()
		if !res.ok {
			took = ">" + watchdog.String()
		}
		line = append(line, res.call, took)
		t.Logf("%s while frozen: returned=%v after %v: %v", res.call, res.ok, res.took.Round(time.Millisecond), res.err)
		switch {
		case !res.ok:
			t.Errorf("%s still blocked %v after its %v deadline", res.call, watchdog, deadline)
		case res.took > bound:
			t.Errorf("%s returned after %v, want within %v (deadline %v)", res.call, res.took, bound, deadline)
		case res.err == nil && res.call != "Close":
			t.Errorf("%s returned nil on a frozen server", res.call)
		}
	}
	summary(t, "sigstop", line...)
}
