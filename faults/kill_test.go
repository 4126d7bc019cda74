package faults_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// TestKillRestart kills the postmaster with SIGKILL under four writers and
// restarts it after about a second, with two async projectors following the
// log: a SQL projector (pgstore.NewProjector, which fails while the server
// is down) and an in-memory one with its checkpoint in PostgreSQL. An
// outage is an infrastructure failure: nothing may be parked or stopped,
// every committed event must reach both views exactly once, without
// Resume.
func TestKillRestart(t *testing.T) {
	for _, policy := range []projection.Policy{projection.Park, projection.Stop} {
		t.Run(policy.String(), func(t *testing.T) { killRestart(t, policy) })
	}
}

func killRestart(t *testing.T, policy projection.Policy) {
	c := faultCluster(t)
	c.ensureUp(t)
	pool := newPool(t, 16)
	schema := newSchema(t, pool)
	st := newStore(t, pool, registry(t, false), schema)
	createApplied(t, pool, schema)
	ins := insertApplied(schema)

	sqlProj := pgstore.NewProjector(st, "sqlview", func(ctx context.Context, tx pgx.Tx, rec event.Record) error {
		_, err := tx.Exec(ctx, ins, int64(rec.Position))
		return err
	})
	mem := newMemView()
	memProj := projection.Named("memview", event.HandlerFunc(func(_ context.Context, rec event.Record) error {
		mem.add(rec.Position)
		return nil
	}))
	r := projection.NewRunner(st, projection.WithCheckpoints(st))
	for _, p := range []projection.Projector{sqlProj, memProj} {
		if err := r.Add(p, projection.AsAsync(), projection.WithPolicy(policy)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err, ok := timed(10*time.Second, r.Close); !ok || err != nil {
			t.Errorf("Close: returned=%v err=%v", ok, err)
		}
	}()

	bus := newBus(st)
	var (
		stop           atomic.Bool
		wg             sync.WaitGroup
		okCount, fails atomic.Int64
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; !stop.Load(); seq++ {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := bus.Dispatch(ctx, TickCmd{Tick{Writer: w, Seq: seq}})
				cancel()
				if err != nil {
					fails.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				okCount.Add(1)
			}
		}()
	}

	// Watch the projectors' states from the kill until they have recovered:
	// an outage must never stop them (it may show them unavailable).
	states := make(map[string]int)
	var statesMu sync.Mutex
	sampleDone := make(chan struct{})
	var sampler sync.WaitGroup
	sample := func() {
		defer sampler.Done()
		for {
			select {
			case <-sampleDone:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			stats, err := r.Status(ctx)
			cancel()
			statesMu.Lock()
			if err != nil {
				states["status error"]++
			}
			for _, s := range stats {
				states[s.Name+":"+s.State.String()]++
			}
			statesMu.Unlock()
		}
	}

	var stopOnce sync.Once
	stopSampler := func() {
		stopOnce.Do(func() { close(sampleDone) })
		sampler.Wait()
	}
	defer stopSampler()

	time.Sleep(500 * time.Millisecond)
	sampler.Add(1)
	go sample()
	killed := time.Now()
	pids := c.kill9(t)
	time.Sleep(time.Second)
	reaped := reap(pids)
	upCtx, cancelUp := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelUp()
	attempts, err := c.start(upCtx, faultURL(t))
	if err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatal(err)
	}
	outage := time.Since(killed)
	t.Logf("server back after %v (%d start attempts; %d of its %d processes still there after 1s, killed)", outage.Round(time.Millisecond), attempts, reaped, len(pids))
	time.Sleep(700 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	// A marker written after the writers stopped: once both projectors
	// have applied it, they have applied everything before it.
	var marker event.Position
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := bus.Dispatch(ctx, TickCmd{Tick{Writer: 99}})
		cancel()
		if err == nil {
			marker = res.Position
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("marker dispatch after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	waitCtx, cancelWait := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelWait()
	waitErr := r.WaitFor(waitCtx, "", marker)
	recovered := time.Since(killed)
	stopSampler()
	if waitErr != nil {
		t.Errorf("projectors did not reach the marker by themselves (no Resume): %v", waitErr)
	}
	t.Logf("states seen during the outage and recovery (samples): %v", states)
	for k := range states {
		if strings.HasSuffix(k, ":"+projection.Stopped.String()) {
			t.Errorf("a projector stopped on the outage (%s)", k)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	logged, err := logPositions(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	sqlView, err := sqlApplied(ctx, pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	sqlLost, sqlDup := compare(logged, sqlView)
	memLost, memDup := compare(logged, mem.snapshot())
	sqlParked, _ := r.Parked("sqlview")
	memParked, _ := r.Parked("memview")
	stats, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		t.Logf("status %s: state=%v checkpoint=%v head=%v behind=%d parked=%d err=%v", s.Name, s.State, s.Checkpoint, s.Head, s.Behind, s.Parked, s.Err)
	}

	t.Logf("writes ok=%d failed=%d; outage %v; recovered (marker applied) %v after kill", okCount.Load(), fails.Load(), outage.Round(time.Millisecond), recovered.Round(time.Millisecond))
	summary(t, "kill9-"+policy.String(), "written", len(logged), "lost", sqlLost+memLost, "duplicated", sqlDup+memDup,
		"parked", len(sqlParked)+len(memParked), "resumes", 0, "reached", waitErr == nil, "outage", outage.Round(time.Millisecond),
		"recover", recovered.Round(time.Millisecond), "sql_lost", sqlLost, "mem_lost", memLost)

	if n := len(sqlParked) + len(memParked); n != 0 {
		t.Errorf("%d events parked by an outage (sqlview %d, memview %d)", n, len(sqlParked), len(memParked))
	}
	if sqlLost+memLost != 0 {
		t.Errorf("lost: sqlview %d, memview %d of %d", sqlLost, memLost, len(logged))
	}
	if sqlDup+memDup != 0 {
		t.Errorf("duplicated: sqlview %d, memview %d", sqlDup, memDup)
	}
}
