package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
	"github.com/cqrskit/cqrs/store"
	"github.com/redis/go-redis/v9"
)

// server is a redis-server of the test's own, without fsync or
// append-only file, in a temporary directory: the fault tests kill it, so
// they never touch the machine's Redis.
type server struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
}

func startServer(t testing.TB) *server {
	t.Helper()
	addr(t) // the fault tests run where Redis tests run
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not on PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &server{t: t, dir: t.TempDir(), port: port}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *server) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start runs the server; it loads dump.rdb from its directory if a SAVE
// wrote one.
func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--dir", s.dir, "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := c.Ping(context.Background()).Err(); err == nil {
			return
		} else if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not start: %v", s.addr(), err)
		}
	}
}

// kill stops the server with SIGKILL: whatever it did not SAVE is lost.
func (s *server) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// logged is an event log kept by the test alongside the store, so the
// reference at any position can be computed.
type logged struct {
	pos    event.Position
	stream string
	n      int
}

func refAt(log []logged, upTo event.Position) model {
	m := model{}
	for _, l := range log {
		if l.pos <= upTo {
			m.add(l.stream, l.n)
		}
	}
	return m
}

func appendLogged(t testing.TB, st *store.Memory, rng *rand.Rand, n int, log *[]logged) event.Position {
	t.Helper()
	var head event.Position
	for range n {
		s := fmt.Sprintf("s-%d", rng.IntN(5))
		v := 1 + rng.IntN(9)
		pos, err := st.Update(context.Background(), func(tx store.Tx) error {
			tx.Record(s, added{N: v})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		*log = append(*log, logged{pos, s, v})
		head = pos
	}
	return head
}

// TestFaultLostWritesRollBackTogether: Redis without fsync is killed with
// SIGKILL while the projector writes, and restarts from its last snapshot:
// the view and the checkpoint go back together (to the snapshot), the
// projector notices that Redis lost its writes and stops, and a restarted
// runner re-applies the lost events: the final view equals the reference.
func TestFaultLostWritesRollBackTogether(t *testing.T) {
	srv := startServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	ns, err := redisstore.NewNamespace(c, "fault", "lost")
	if err != nil {
		t.Fatal(err)
	}
	cv := newCounter(ns)
	st := store.NewMemory()
	rng := rand.New(rand.NewPCG(7, 8))
	var log []logged
	ctx := context.Background()

	snap := appendLogged(t, st, rng, 150, &log)
	r := startRunner(t, st, cv.projector())
	waitFor(t, r, "lost", snap)
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Writes after the snapshot, the last ones while the server dies.
	head := appendLogged(t, st, rng, 100, &log)
	waitFor(t, r, "lost", head)
	var wg sync.WaitGroup
	wg.Go(func() { head = appendLogged(t, st, rng, 100, &log) })
	time.Sleep(5 * time.Millisecond)
	srv.kill()
	wg.Wait()
	srv.start()

	// Redis is back at the snapshot: view and checkpoint agree.
	if cp, err := cv.projector().LoadCheckpoint(ctx); err != nil || cp.Position != snap {
		t.Fatalf("checkpoint after the restart %+v, %v; want the snapshot's %v", cp, err, snap)
	}
	checkCounts(t, cv, refAt(log, snap))

	// The running projector refuses to go on past the lost writes: its
	// next batch finds the checkpoint behind the one it committed.
	head = appendLogged(t, st, rng, 50, &log)
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := r.StatusOf(ctx, "lost")
		if err != nil {
			t.Fatal(err)
		}
		if s.State == projection.Stopped {
			if !errors.Is(s.Err, store.ErrConflict) {
				t.Fatalf("stopped with %v, want a conflict", s.Err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projector not stopped after Redis lost writes: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.Close()

	// A new runner resumes at Redis's checkpoint and applies the rest.
	r2 := startRunner(t, st, cv.projector())
	waitFor(t, r2, "lost", head)
	checkCounts(t, cv, refAt(log, head))
}

// TestFaultConnectionsKilled: the projector's connections are killed over
// and over (CLIENT KILL) while it commits batches; some commits run on
// the server and lose their reply, some never arrive. Every event is
// applied exactly once.
func TestFaultConnectionsKilled(t *testing.T) {
	srv := startServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.addr(), MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	admin := redis.NewClient(&redis.Options{Addr: srv.addr()})
	t.Cleanup(func() { admin.Close() })
	ns, err := redisstore.NewNamespace(c, "fault", "killed")
	if err != nil {
		t.Fatal(err)
	}
	cv := newCounter(ns)
	st := store.NewMemory()
	rng := rand.New(rand.NewPCG(9, 10))
	var log []logged
	ctx := context.Background()
	r := startRunner(t, st, cv.projector())

	stop := make(chan struct{})
	var kills int
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rand.IntN(3000)) * time.Microsecond):
			}
			n, err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Result()
			if err == nil {
				kills += int(n)
			}
		}
	})
	var head event.Position
	for range 20 {
		head = appendLogged(t, st, rng, 25, &log)
		time.Sleep(2 * time.Millisecond)
	}
	waitFor(t, r, "killed", head)
	close(stop)
	wg.Wait()
	checkCounts(t, cv, refAt(log, head))
	if cp, err := cv.projector().LoadCheckpoint(ctx); err != nil || cp.Position != head {
		t.Errorf("checkpoint %+v, %v; want %v", cp, err, head)
	}
	if kills == 0 {
		t.Error("no connection was killed")
	}
	t.Logf("%d connections killed", kills)
}

// TestFaultSwapWhileRedisDown: a rebuild's swap finds Redis down; readers
// keep the old generation, the projector keeps retrying the switch in
// the background and makes it when Redis is back; Close ends the
// background work (no goroutine left).
func TestFaultSwapWhileRedisDown(t *testing.T) {
	srv := startServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.addr(), MaxRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	ns, err := redisstore.NewNamespace(c, "fault", "swap")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cv := newCounter(ns)
	p := cv.projector()
	recs := []event.Record{
		{Position: 1, Stream: "a", Data: added{N: 1}},
		{Position: 2, Stream: "b", Data: added{N: 2}},
	}
	for _, rec := range recs {
		if err := p.Handle(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.FlushBatch(ctx, 2); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()

	cv.factor = 10 // the rebuilt view differs, so the switch is visible
	sh, err := p.Shadow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if err := sh.Handler.Handle(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := sh.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, cv, model{"a": 1, "b": 2, totalKey: 3}) // readers: the old generation
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	srv.kill()
	sh.Swap() // cannot reach Redis
	srv.start()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if g, err := ns.Generation(ctx); err == nil && g == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readers not switched to the rebuilt generation after Redis came back")
		}
	}
	checkCounts(t, cv, model{"a": 10, "b": 20, totalKey: 30})
	p.Close()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > base; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before the rebuild\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
	}
}
