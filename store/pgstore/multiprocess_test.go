package pgstore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// These tests run projectors in several operating-system processes: the
// test binary starts copies of itself (TestLeaseChild, selected by
// childEnv) that each run a Runner with the same exactly-once counter
// projector under pgstore's leases, and kills, stops and restarts them.
//
// Environment:
//   - CQRSKIT_LEASE_KILLS=n: kill the owner n times in TestMultiProcessFailover
//     (default 2) and log the takeover times' p50 and max;
//   - CQRSKIT_LEASE_SPEEDUP=n: run TestMultiProcessSpeedup on n events
//     (skipped otherwise).
const childEnv = "CQRSKIT_LEASE_CHILD"

// mpTTL is the children's lease TTL: short, to keep the tests quick.
const mpTTL = time.Second

// childReport is what a child prints, as one JSON line, every 50ms.
type childReport struct {
	Owner    string        `json:"owner"`
	Fenced   int64         `json:"fenced"` // writes its projector had refused by the fence
	Statuses []childStatus `json:"statuses"`
}

type childStatus struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	Owner      string `json:"owner"`
	Epoch      uint64 `json:"epoch"`
	Checkpoint uint64 `json:"checkpoint"`
}

// held lists the projectors (or partitions) the child delivers to.
func (r childReport) held() []string {
	var out []string
	for _, s := range r.Statuses {
		if s.Owner == r.Owner && s.State != projection.Standby.String() {
			out = append(out, s.Name)
		}
	}
	return out
}

// counterTables creates the counter view's tables: a count and the last
// version applied per stream (disorder counts versions that arrived out of
// order), and one row per applied position (dup counts re-applications).
func counterTables(t testing.TB, pool *pgxpool.Pool, schema string) {
	t.Helper()
	q := pgx.Identifier{schema}.Sanitize()
	_, err := pool.Exec(context.Background(), `
CREATE TABLE `+q+`.counts (stream text PRIMARY KEY, n bigint NOT NULL, last_version bigint NOT NULL, disorder bigint NOT NULL DEFAULT 0);
CREATE TABLE `+q+`.applied (position bigint PRIMARY KEY, dup integer NOT NULL DEFAULT 0);`)
	require.NoError(t, err)
}

// leasedCounter is the child's projector: pgstore.Projector (view and
// checkpoint in one transaction, fenced) around the counter tables. A
// pause before each record, outside the transaction, makes kills and stops
// land mid-batch; the write after it ignores cancellation, as a slow
// handler that does not watch its context would, so a stale owner does
// try to write and the fence must refuse it.
type leasedCounter struct {
	*pgstore.Projector
	pause  time.Duration
	fenced atomic.Int64
}

func newLeasedCounter(st *pgstore.Store, schema string, pause time.Duration) *leasedCounter {
	q := pgx.Identifier{schema}.Sanitize()
	upsert := `INSERT INTO ` + q + `.counts AS c (stream, n, last_version) VALUES ($1, 1, $2)
		ON CONFLICT (stream) DO UPDATE SET n = c.n + 1, last_version = $2,
			disorder = c.disorder + CASE WHEN c.last_version >= $2 THEN 1 ELSE 0 END`
	mark := `INSERT INTO ` + q + `.applied AS a (position) VALUES ($1)
		ON CONFLICT (position) DO UPDATE SET dup = a.dup + 1`
	c := &leasedCounter{pause: pause}
	c.Projector = pgstore.NewProjector(st, "counter", func(ctx context.Context, tx pgx.Tx, rec event.Record) error {
		if _, err := tx.Exec(ctx, upsert, rec.Stream, int64(rec.Version)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, mark, int64(rec.Position))
		return err
	})
	return c
}

func (c *leasedCounter) Handle(ctx context.Context, rec event.Record) error {
	if c.pause > 0 {
		time.Sleep(c.pause)
	}
	err := c.Projector.Handle(context.WithoutCancel(ctx), rec)
	if errors.Is(err, projection.ErrFenced) {
		c.fenced.Add(1)
	}
	return err
}

// batchCounter is the counter as a production projector with a remote
// read model would be written: it implements projection.BatchFlusher, so
// Handle only buffers the record (per partition: the partitions' goroutines
// call it concurrently) and FlushBatch applies the runner's whole batch in
// one transaction, pipelined, with the checkpoint. That transaction checks
// the fence and locks the partition's checkpoint row like
// pgstore.Projector's, and applies only the records past that checkpoint,
// so each event's effect stays exactly-once.
type batchCounter struct {
	*leasedCounter
	upsert, mark string
	mu           sync.Mutex
	bufs         map[string][]event.Record // by checkpoint (partition) name
}

var _ projection.BatchFlusher = (*batchCounter)(nil)

func newBatchCounter(st *pgstore.Store, schema string, pause time.Duration) *batchCounter {
	q := pgx.Identifier{schema}.Sanitize()
	return &batchCounter{
		leasedCounter: newLeasedCounter(st, schema, pause),
		upsert: `INSERT INTO ` + q + `.counts AS c (stream, n, last_version) VALUES ($1, 1, $2)
		ON CONFLICT (stream) DO UPDATE SET n = c.n + 1, last_version = $2,
			disorder = c.disorder + CASE WHEN c.last_version >= $2 THEN 1 ELSE 0 END`,
		mark: `INSERT INTO ` + q + `.applied AS a (position) VALUES ($1)
		ON CONFLICT (position) DO UPDATE SET dup = a.dup + 1`,
		bufs: map[string][]event.Record{},
	}
}

func bufKey(ctx context.Context) string {
	if p, ok := projection.PartitionFrom(ctx); ok {
		return p.Name
	}
	return ""
}

func (c *batchCounter) Handle(ctx context.Context, rec event.Record) error {
	if c.pause > 0 {
		time.Sleep(c.pause)
	}
	k := bufKey(ctx)
	c.mu.Lock()
	c.bufs[k] = append(c.bufs[k], rec)
	c.mu.Unlock()
	return nil
}

func (c *batchCounter) FlushBatch(ctx context.Context, pos event.Position) error {
	k := bufKey(ctx)
	c.mu.Lock()
	recs := c.bufs[k]
	delete(c.bufs, k) // applied or not, the runner delivers a failed batch again
	c.mu.Unlock()
	err := pgstore.ProjectorTx(context.WithoutCancel(ctx), c.Projector, func(tx pgx.Tx, cur event.Position) (bool, error) {
		if cur >= pos {
			return false, nil // a redelivery: all applied already
		}
		var b pgx.Batch
		for _, rec := range recs {
			if rec.Position > cur {
				b.Queue(c.upsert, rec.Stream, int64(rec.Version))
				b.Queue(c.mark, int64(rec.Position))
			}
		}
		if b.Len() > 0 {
			if err := tx.SendBatch(ctx, &b).Close(); err != nil {
				return false, err
			}
		}
		return true, pgstore.AdvanceCheckpoint(ctx, c.Projector, tx, pos)
	})
	if errors.Is(err, projection.ErrFenced) {
		c.fenced.Add(1)
	}
	return err
}

// TestLeaseChild is the child process; it does nothing in a normal run.
func TestLeaseChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("only runs as a child of the multi-process tests")
	}
	env := func(k string) string { return os.Getenv("CQRSKIT_LEASE_" + k) }
	// The parent holds our stdin open: when it ends, however it ends, so
	// do we, rather than project on for good.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(os.Getenv(urlEnv))
	require.NoError(t, err)
	cfg.MaxConns = 10
	// What the README asks of a deployment: a process frozen inside a
	// transaction (SIGSTOP lands there often enough) keeps the lease row
	// locked and so blocks the takeover until PostgreSQL ends its session.
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = fmt.Sprint((mpTTL / 2).Milliseconds())
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	schema := env("SCHEMA")
	st, err := pgstore.New(ctx, pool, testRegistry(t), pgstore.WithSchema(schema), pgstore.WithPollInterval(50*time.Millisecond))
	require.NoError(t, err)
	defer st.Close()
	owner := env("OWNER")
	parts, _ := strconv.Atoi(env("PARTITIONS"))
	pause, _ := time.ParseDuration(env("PAUSE"))
	batch, _ := strconv.Atoi(env("BATCH"))
	r := projection.NewRunner(st, projection.WithLeases(st, owner, mpTTL), projection.WithBatchSize(max(batch, 1)))
	var (
		p      projection.Projector
		fenced *atomic.Int64
	)
	if env("FLUSH") != "" {
		c := newBatchCounter(st, schema, pause)
		p, fenced = c, &c.fenced
	} else {
		c := newLeasedCounter(st, schema, pause)
		p, fenced = c, &c.fenced
	}
	require.NoError(t, r.Add(p, projection.AsAsync(), projection.WithPartitions(parts), projection.WithRetry(1, nil)))
	require.NoError(t, r.Start(ctx))
	defer r.Close()
	out := bufio.NewWriter(os.Stdout)
	for {
		ss, err := r.Status(ctx)
		if err == nil {
			rep := childReport{Owner: owner, Fenced: fenced.Load()}
			for _, s := range ss {
				rep.Statuses = append(rep.Statuses, childStatus{Name: s.Name, State: s.State.String(), Owner: s.Owner, Epoch: s.Epoch, Checkpoint: uint64(s.Checkpoint)})
			}
			b, _ := json.Marshal(rep)
			fmt.Fprintf(out, "REPORT %s\n", b)
			_ = out.Flush()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// child is a running child process and its latest report.
type child struct {
	owner string
	cmd   *exec.Cmd
	mu    sync.Mutex
	last  childReport
	seen  bool
	done  chan struct{}
}

func (c *child) report() (childReport, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.seen
}

// cluster is a schema with the counter tables, a store for the test's own
// writes and checks, and the children.
type cluster struct {
	t        *testing.T
	pool     *pgxpool.Pool
	schema   string
	st       *pgstore.Store
	parts    int
	pause    time.Duration
	batch    int
	flush    bool // the children run batchCounter (a BatchFlusher)
	children []*child
	n        int // children started so far, for owner names
	streams  int
	written  int
}

func newCluster(t *testing.T, parts int, pause time.Duration) *cluster {
	pool := newPool(t, 8)
	st := newStore(t, pool)
	counterTables(t, pool, st.Schema())
	return &cluster{t: t, pool: pool, schema: st.Schema(), st: st, parts: parts, pause: pause, batch: 50, streams: 40}
}

func (cl *cluster) start() *child {
	t := cl.t
	cl.n++
	c := &child{owner: fmt.Sprintf("proc-%d", cl.n), done: make(chan struct{})}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeaseChild$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), childEnv+"=1",
		"CQRSKIT_LEASE_SCHEMA="+cl.schema, "CQRSKIT_LEASE_OWNER="+c.owner,
		"CQRSKIT_LEASE_PARTITIONS="+strconv.Itoa(cl.parts), "CQRSKIT_LEASE_PAUSE="+cl.pause.String(),
		"CQRSKIT_LEASE_BATCH="+strconv.Itoa(cl.batch))
	if cl.flush {
		cmd.Env = append(cmd.Env, "CQRSKIT_LEASE_FLUSH=1")
	}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	// Never written: it closes when this process exits, which tells the
	// child to exit too.
	_, err = cmd.StdinPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	c.cmd = cmd
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			const prefix = "REPORT "
			if len(line) < len(prefix) || string(line[:len(prefix)]) != prefix {
				continue
			}
			var rep childReport
			if json.Unmarshal(line[len(prefix):], &rep) == nil {
				c.mu.Lock()
				c.last, c.seen = rep, true
				c.mu.Unlock()
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() { cl.kill(c) })
	cl.children = append(cl.children, c)
	return c
}

// kill SIGKILLs c (if it still runs) and waits for it to exit.
func (cl *cluster) kill(c *child) {
	_ = c.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies too, but be sure
	_ = c.cmd.Process.Kill()
	<-c.done
	cl.children = slices.DeleteFunc(cl.children, func(x *child) bool { return x == c })
}

// write appends n events spread over the cluster's streams.
func (cl *cluster) write(n int) {
	t := cl.t
	for done := 0; done < n; {
		k := min(100, n-done)
		_, err := cl.st.Update(context.Background(), func(tx store.Tx) error {
			for j := range k {
				i := cl.written + done + j
				tx.Record(fmt.Sprintf("s-%d", i%cl.streams), Incremented{Key: "k", N: i})
			}
			return nil
		})
		require.NoError(t, err)
		done += k
	}
	cl.written += n
}

// holders returns the live lease holder of each leased name.
func (cl *cluster) holders() map[string]projection.Lease {
	ls, err := cl.st.List(context.Background(), "counter")
	require.NoError(cl.t, err)
	m := map[string]projection.Lease{}
	for _, l := range ls {
		m[l.Name] = l
	}
	return m
}

// leaseNames are the names the counter is leased under.
func (cl *cluster) leaseNames() []string {
	if cl.parts <= 1 {
		return []string{"counter"}
	}
	var out []string
	for i := range cl.parts {
		out = append(out, projection.PartitionName("counter", i, cl.parts))
	}
	return out
}

// until polls cond every 10ms for up to d.
func (cl *cluster) until(d time.Duration, what string, cond func() bool) {
	cl.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			cl.t.Fatalf("not %s within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// applied is the number of records the view has applied.
func (cl *cluster) applied() int {
	var n int
	require.NoError(cl.t, cl.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{cl.schema}.Sanitize()+`.applied`).Scan(&n))
	return n
}

// checkExact waits until every written event is applied, then requires
// each exactly once, every stream counted right and in version order.
func (cl *cluster) checkExact(within time.Duration) {
	t := cl.t
	t.Helper()
	cl.until(within, fmt.Sprintf("all %d events applied", cl.written), func() bool { return cl.applied() >= cl.written })
	q := pgx.Identifier{cl.schema}.Sanitize()
	var rows, dups, total, disorder int
	require.NoError(t, cl.pool.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(dup), 0) FROM `+q+`.applied`).Scan(&rows, &dups))
	require.NoError(t, cl.pool.QueryRow(context.Background(), `SELECT coalesce(sum(n), 0), coalesce(sum(disorder), 0) FROM `+q+`.counts`).Scan(&total, &disorder))
	require.Equal(t, cl.written, rows, "distinct positions applied")
	require.Zero(t, dups, "positions applied more than once")
	require.Equal(t, cl.written, total, "sum of the per-stream counts")
	require.Zero(t, disorder, "records of a stream applied out of version order")
	want := map[string]int{}
	for i := range cl.written {
		want[fmt.Sprintf("s-%d", i%cl.streams)]++
	}
	rs, err := cl.pool.Query(context.Background(), `SELECT stream, n FROM `+q+`.counts`)
	require.NoError(t, err)
	got := map[string]int{}
	for rs.Next() {
		var s string
		var n int
		require.NoError(t, rs.Scan(&s, &n))
		got[s] = n
	}
	require.NoError(t, rs.Err())
	require.Equal(t, want, got, "per-stream counts")
}

// caughtUp waits until the checkpoint of every partition is at the log's
// head. It polls the small checkpoints table every 100ms, not the view,
// so that waiting costs the projectors next to no CPU.
func (cl *cluster) caughtUp(within time.Duration) {
	cl.t.Helper()
	head, err := cl.st.Head(context.Background())
	require.NoError(cl.t, err)
	names := cl.leaseNames()
	q := `SELECT count(*), coalesce(min(position), 0) FROM ` + pgx.Identifier{cl.schema}.Sanitize() + `.checkpoints WHERE name = ANY($1)`
	deadline := time.Now().Add(within)
	for {
		var n, low int64
		require.NoError(cl.t, cl.pool.QueryRow(context.Background(), q, names).Scan(&n, &low))
		if int(n) == len(names) && event.Position(low) >= head {
			return
		}
		if time.Now().After(deadline) {
			cl.t.Fatalf("checkpoints not at the head %v within %v", head, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// owner returns the child holding name's lease, waiting for one.
func (cl *cluster) ownerOf(name string, within time.Duration) *child {
	var found *child
	cl.until(within, "an owner for "+name, func() bool {
		h := cl.holders()[name]
		for _, c := range cl.children {
			if c.owner == h.Owner {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestMultiProcessFailover: three processes, one projector. SIGKILL the
// owner mid-batch; another takes over within about the TTL and resumes
// from the checkpoint: nothing lost, nothing applied twice.
func TestMultiProcessFailover(t *testing.T) {
	testURL(t)
	kills := 2
	if s := os.Getenv("CQRSKIT_LEASE_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	cl := newCluster(t, 1, time.Millisecond)
	cl.write(2000)
	for range 3 {
		cl.start()
	}
	var takeovers []time.Duration
	for k := range kills {
		owner := cl.ownerOf("counter", 10*mpTTL)
		// Let it get some way into the log (a batch is in hand).
		before := cl.applied()
		cl.until(10*mpTTL, "progress by the owner", func() bool { return cl.applied() > before+20 })
		old := cl.holders()["counter"]
		t0 := time.Now()
		cl.kill(owner)
		var next projection.Lease
		cl.until(5*mpTTL, "a takeover", func() bool {
			next = cl.holders()["counter"]
			return next.Owner != "" && next.Owner != old.Owner
		})
		d := time.Since(t0)
		takeovers = append(takeovers, d)
		require.Greater(t, next.Token, old.Token, "kill %d: the new owner's epoch", k)
		cl.start() // keep three processes
		cl.write(300)
	}
	cl.checkExact(60 * time.Second)
	t.Logf("takeover after SIGKILL over %d kills (TTL %v): p50 %v, max %v", len(takeovers), mpTTL,
		percentile(takeovers, 0.5).Round(time.Millisecond), percentile(takeovers, 1).Round(time.Millisecond))
	for _, d := range takeovers {
		// Within the TTL by design; the margin is for a loaded CI machine.
		require.Less(t, d, mpTTL+mpTTL/2, "a takeover took much longer than the TTL")
	}
}

// TestMultiProcessPausedOwner: SIGSTOP the owner past its lease; another
// process takes over; on SIGCONT the old owner's writes are refused by the
// fence, it goes back to standby, and the view stays exact.
func TestMultiProcessPausedOwner(t *testing.T) {
	testURL(t)
	cl := newCluster(t, 1, 5*time.Millisecond)
	cl.write(1000)
	for range 2 {
		cl.start()
	}
	owner := cl.ownerOf("counter", 10*mpTTL)
	cl.until(10*mpTTL, "progress", func() bool { return cl.applied() > 50 })
	old := cl.holders()["counter"]
	require.NoError(t, owner.cmd.Process.Signal(syscall.SIGSTOP))
	stopped := time.Now()
	var next projection.Lease
	cl.until(5*mpTTL, "a takeover from the stopped owner", func() bool {
		next = cl.holders()["counter"]
		return next.Owner != "" && next.Owner != old.Owner
	})
	t.Logf("takeover from a stopped owner after %v", time.Since(stopped).Round(time.Millisecond))
	time.Sleep(mpTTL / 2) // the new owner makes progress meanwhile
	require.NoError(t, owner.cmd.Process.Signal(syscall.SIGCONT))
	var rep childReport
	// Woken up, the old owner either had a write in flight, which the
	// fence refuses, or was between records and stands down by its own
	// clock before the next one, or was frozen inside a transaction that
	// PostgreSQL has ended meanwhile (where SIGSTOP lands decides which;
	// the refusal itself is tested deterministically in projection's lease
	// tests). Either way it must end in standby without having written:
	// checkExact below proves the latter.
	cl.until(5*mpTTL, "the old owner back in standby", func() bool {
		var ok bool
		rep, ok = owner.report()
		return ok && len(rep.held()) == 0 && len(rep.Statuses) == 1 &&
			rep.Statuses[0].Owner == next.Owner && rep.Statuses[0].State == projection.Standby.String()
	})
	if rep.Fenced > 0 {
		t.Logf("stale writes refused by the fence after SIGCONT: %d", rep.Fenced)
	} else {
		t.Logf("no stale write reached the fence: the old owner stood down by its own clock, or PostgreSQL ended its frozen transaction")
	}
	require.Equal(t, next.Token, rep.Statuses[0].Epoch, "the standby's Status names the new epoch")
	cl.write(200)
	cl.checkExact(60 * time.Second)
}

// TestMultiProcessPartitions: three processes, the projector in 8
// partitions. They share the partitions out; kill one and its partitions
// move to the others; start it again and it gets its share back. Status
// of every process names the owner, epoch and partitions held; the view is
// exact and every stream in order.
// It runs with pgstore.Projector (a transaction per event) and with
// batchCounter (a transaction per batch, as FlushBatch).
func TestMultiProcessPartitions(t *testing.T) {
	testURL(t)
	t.Run("per-event", func(t *testing.T) { multiProcessPartitions(t, false) })
	t.Run("batch", func(t *testing.T) { multiProcessPartitions(t, true) })
}

func multiProcessPartitions(t *testing.T, flush bool) {
	cl := newCluster(t, 8, time.Millisecond)
	cl.flush = flush
	cl.write(2000)
	for range 3 {
		cl.start()
	}
	names := cl.leaseNames()
	// balanced waits until each live child holds its share, and checks
	// that the children's Status agrees with the lease table.
	balanced := func(what string) {
		t.Helper()
		cl.until(15*mpTTL, what, func() bool {
			hs := cl.holders()
			byOwner := map[string][]string{}
			for _, n := range names {
				h, ok := hs[n]
				if !ok {
					return false
				}
				byOwner[h.Owner] = append(byOwner[h.Owner], n)
			}
			share := (len(names) + len(cl.children) - 1) / len(cl.children)
			for _, c := range cl.children {
				got := byOwner[c.owner]
				if len(got) < share-1 || len(got) > share {
					return false
				}
				rep, ok := c.report()
				if !ok || !slices.Equal(rep.held(), got) {
					return false
				}
				for _, s := range rep.Statuses {
					if s.Owner != hs[s.Name].Owner || s.Epoch != hs[s.Name].Token {
						return false
					}
				}
			}
			return len(byOwner) == len(cl.children)
		})
		for _, c := range cl.children {
			rep, _ := c.report()
			t.Logf("%s: %s holds %v", what, c.owner, rep.held())
		}
	}
	balanced("shared out over 3")
	cl.write(500)
	victim := cl.children[0]
	cl.kill(victim)
	balanced("moved to the 2 survivors")
	cl.write(500)
	cl.start()
	balanced("shared out again after the restart")
	cl.write(500)
	cl.checkExact(60 * time.Second)
}

// TestMultiProcessSpeedup projects CQRSKIT_LEASE_SPEEDUP events with one
// unpartitioned process, then in 8 partitions with one process and with
// three, and logs the times and speed-ups. The projector commits each
// runner batch (256 records) in one transaction with its checkpoint
// (batchCounter), as a production projector on a remote store would.
func TestMultiProcessSpeedup(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CQRSKIT_LEASE_SPEEDUP"))
	if n <= 0 {
		t.Skip("set CQRSKIT_LEASE_SPEEDUP=<events> to measure the partitioned speed-up")
	}
	testURL(t)
	run := func(parts, procs int) time.Duration {
		cl := newCluster(t, parts, 0)
		cl.streams = 1000
		cl.batch = 256
		cl.flush = true
		cl.write(n)
		t0 := time.Now()
		for range procs {
			cl.start()
		}
		cl.caughtUp(30 * time.Minute)
		d := time.Since(t0)
		cl.checkExact(time.Minute)
		for _, c := range slices.Clone(cl.children) {
			cl.kill(c)
		}
		t.Logf("%d events, %d partition(s), %d process(es): %v (%.0f events/s)", n, parts, procs, d.Round(time.Millisecond), float64(n)/d.Seconds())
		return d
	}
	whole := run(1, 1)
	one := run(8, 1)
	three := run(8, 3)
	t.Logf("speed-up of 3 processes over 1 (8 partitions): %.2fx; over 1 unpartitioned process: %.2fx",
		one.Seconds()/three.Seconds(), whole.Seconds()/three.Seconds())
}
