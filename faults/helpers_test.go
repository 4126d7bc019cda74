package faults_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// Environment set by run.sh.
const (
	urlEnv     = "CQRSKIT_FAULT_PG_URL"
	otherEnv   = "CQRSKIT_FAULT_PG_OTHER_DB"
	versionEnv = "CQRSKIT_FAULT_PG_VERSION"
	clusterEnv = "CQRSKIT_FAULT_PG_CLUSTER"
	dataEnv    = "CQRSKIT_FAULT_PG_DATA"
)

// faultURL returns the throw-away cluster's URL or skips the test.
func faultURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(urlEnv)
	if u == "" {
		t.Skip(urlEnv + " is not set: run faults/run.sh, which creates a throw-away PostgreSQL " +
			"cluster for these tests (they kill and freeze it) and drops it afterwards")
	}
	return u
}

// cluster is the throw-away server the tests kill, freeze and restart.
type cluster struct {
	version, name, data string
}

// faultCluster returns the cluster run.sh created, or skips the test.
func faultCluster(t testing.TB) *cluster {
	t.Helper()
	faultURL(t)
	c := &cluster{version: os.Getenv(versionEnv), name: os.Getenv(clusterEnv), data: os.Getenv(dataEnv)}
	if c.version == "" || c.name == "" || c.data == "" {
		t.Skip(versionEnv + ", " + clusterEnv + " and " + dataEnv + " must name the throw-away cluster (run faults/run.sh)")
	}
	if c.name == "main" {
		t.Fatal("refusing to kill the machine's main cluster")
	}
	return c
}

// postmaster returns the pid in the cluster's postmaster.pid.
func (c *cluster) postmaster() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// kill9 kills the postmaster with SIGKILL and returns at once; its
// backends notice and exit on their own. It returns the processes of the
// server as they were, for reap.
func (c *cluster) kill9(t testing.TB) []int {
	t.Helper()
	pids, err := c.processes()
	if err != nil {
		t.Fatalf("server processes: %v", err)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pids[0], err)
	}
	return pids
}

// reap waits up to a second for the backends of a killed postmaster to
// exit (they hold its shared memory, so a new postmaster cannot start) and
// kills those still there. It reports how many it had to kill.
func reap(pids []int) (killed int) {
	alive := func() []int {
		var out []int
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				out = append(out, pid)
			}
		}
		return out
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end) && len(alive()) > 0; {
		time.Sleep(20 * time.Millisecond)
	}
	for _, pid := range alive() {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	return killed
}

// start starts the cluster, retrying while the killed server's backends
// still hold its shared memory, and returns once it accepts connections.
// It reports how many start attempts it took.
func (c *cluster) start(ctx context.Context, url string) (attempts int, err error) {
	var last error
	for ctx.Err() == nil {
		attempts++
		out, err := exec.CommandContext(ctx, "pg_ctlcluster", "--skip-systemctl-redirect", c.version, c.name, "start").CombinedOutput()
		if err != nil && !strings.Contains(string(out), "already running") {
			last = fmt.Errorf("pg_ctlcluster start: %v: %s", err, bytes.TrimSpace(out))
		} else if last = ping(ctx, url); last == nil {
			return attempts, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return attempts, fmt.Errorf("cluster did not come back after %d attempts: %w", attempts, last)
}

// ensureUp makes sure the cluster runs when a test that killed it ends.
func (c *cluster) ensureUp(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.start(ctx, faultURL(t)); err != nil {
			t.Errorf("restart after test: %v", err)
		}
	})
}

func ping(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// processes returns the postmaster and its children.
func (c *cluster) processes() ([]int, error) {
	pm, err := c.postmaster()
	if err != nil {
		return nil, err
	}
	pids := []int{pm}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// freeze sends SIGSTOP to the postmaster and every backend, so the server
// accepts TCP connections (the kernel does) but never answers. The cluster
// is thawed when the test ends, before anything registered earlier runs.
func (c *cluster) freeze(t testing.TB) (thaw func()) {
	t.Helper()
	pids, err := c.processes()
	if err != nil {
		t.Fatalf("server processes: %v", err)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		})
	}
	t.Cleanup(thaw)
	return thaw
}

// newPool connects to the cluster; the pool is closed when the test ends.
func newPool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(faultURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// newSchema returns a fresh schema name, dropped when the test ends.
func newSchema(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "faults_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// Tick is the event of these tests: who wrote it, and whether a projector
// that is told to fail on poison fails on it.
type Tick struct {
	Writer int  `json:"w"`
	Seq    int  `json:"s"`
	Poison bool `json:"p,omitempty"`
}

// EventType implements event.Event.
func (Tick) EventType() string { return "faults.tick" }

// Novel is an event type that only newer writers know.
type Novel struct {
	N int `json:"n"`
}

// EventType implements event.Event.
func (Novel) EventType() string { return "faults.novel" }

// registry knows Tick and, with novel, Novel.
func registry(t testing.TB, novel bool) *event.Registry {
	t.Helper()
	reg := event.NewRegistry()
	if err := event.Register[Tick](reg); err != nil {
		t.Fatal(err)
	}
	if novel {
		if err := event.Register[Novel](reg); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// newStore opens a pgstore in schema; it is closed when the test ends.
func newStore(t testing.TB, pool *pgxpool.Pool, reg *event.Registry, schema string) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := pgstore.New(ctx, pool, reg, pgstore.WithSchema(schema), pgstore.WithPollInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// exec runs SQL in schema's context with a deadline.
func execSQL(t testing.TB, pool *pgxpool.Pool, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pool.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TickCmd records one Tick.
type TickCmd struct{ Tick }

// newBus dispatches TickCmd on st.
func newBus(st store.Store, opts ...command.Option) *command.Bus {
	bus := command.New(st, opts...)
	command.Register(bus, func(ctx context.Context, tx store.Tx, c TickCmd) error {
		tx.Record(fmt.Sprintf("writer-%d", c.Writer), c.Tick)
		return nil
	})
	return bus
}

// record appends one event to st in its own unit of work.
func record(t testing.TB, st store.Store, e event.Event) event.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pos, err := st.Update(ctx, func(tx store.Tx) error {
		tx.Record("s", e)
		return nil
	})
	if err != nil {
		t.Fatalf("record %T: %v", e, err)
	}
	return pos
}

// logPositions reads every position in lg.
func logPositions(ctx context.Context, lg store.Log) ([]event.Position, error) {
	var out []event.Position
	buf := make([]event.Record, 0, 512)
	var after event.Position
	for {
		recs, err := lg.Read(ctx, after, buf[:0])
		if err != nil {
			return out, err
		}
		if len(recs) == 0 {
			return out, nil
		}
		for _, r := range recs {
			out = append(out, r.Position)
			after = r.Position
		}
	}
}

// compare folds the log against what a view applied: lost are positions of
// the log the view lacks, duplicated those it applied more than once.
func compare(logged []event.Position, applied map[event.Position]int) (lost, duplicated int) {
	for _, p := range logged {
		if applied[p] == 0 {
			lost++
		}
	}
	for _, n := range applied {
		if n > 1 {
			duplicated += n - 1
		}
	}
	return lost, duplicated
}

// memView is an in-memory read model counting applications per position.
type memView struct {
	mu      sync.Mutex
	applied map[event.Position]int
}

func newMemView() *memView { return &memView{applied: make(map[event.Position]int)} }

func (v *memView) add(p event.Position) {
	v.mu.Lock()
	v.applied[p]++
	v.mu.Unlock()
}

func (v *memView) snapshot() map[event.Position]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := make(map[event.Position]int, len(v.applied))
	for k, n := range v.applied {
		m[k] = n
	}
	return m
}

// sqlApplied reads the positions a SQL view applied (table applied of
// schema, one row per application).
func sqlApplied(ctx context.Context, pool *pgxpool.Pool, schema string) (map[event.Position]int, error) {
	rows, err := pool.Query(ctx, "SELECT position, count(*) FROM "+pgx.Identifier{schema, "applied"}.Sanitize()+" GROUP BY position")
	if err != nil {
		return nil, err
	}
	m := make(map[event.Position]int)
	var pos, n int64
	_, err = pgx.ForEachRow(rows, []any{&pos, &n}, func() error {
		m[event.Position(pos)] = int(n)
		return nil
	})
	return m, err
}

// createApplied makes schema.applied, the SQL view of these tests: one row
// per application, no unique constraint, so a double apply shows.
func createApplied(t testing.TB, pool *pgxpool.Pool, schema string) {
	t.Helper()
	execSQL(t, pool, "CREATE TABLE "+pgx.Identifier{schema, "applied"}.Sanitize()+" (position bigint NOT NULL)")
}

// insertApplied is the statement a SQL projector runs per event.
func insertApplied(schema string) string {
	return "INSERT INTO " + pgx.Identifier{schema, "applied"}.Sanitize() + " VALUES ($1)"
}

// timed runs fn on its own goroutine and reports how long it took, or
// ok=false when it has not returned within limit (fn then keeps running).
func timed(limit time.Duration, fn func() error) (d time.Duration, err error, ok bool) {
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return time.Since(start), err, true
	case <-time.After(limit):
		return time.Since(start), nil, false
	}
}

// summary prints the line the lead collects into the before/after table.
func summary(t testing.TB, scenario string, kv ...any) {
	t.Helper()
	var b strings.Builder
	b.WriteString("FAULT-SUMMARY: scenario=" + scenario)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %v=%v", kv[i], kv[i+1])
	}
	t.Log(b.String())
}

// errorsAs is errors.As for a fresh target.
func errorsAs[T error](err error) (T, bool) {
	var target T
	ok := errors.As(err, &target)
	return target, ok
}
