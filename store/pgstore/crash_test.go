package pgstore_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// crashChildEnv tells the re-executed test binary which schema to work in.
const crashChildEnv = "PGSTORE_CRASH_CHILD_SCHEMA"

// crashRig is the application of the crash test: Increment commands that
// write a row, run their own SQL (audit) and record an event, and a SQL
// projector (view_counts) that records every position it applies in
// view_applied, which has no unique constraint so a double apply would show.
type crashRig struct {
	st   *pgstore.Store
	bus  *command.Bus
	proj *pgstore.Projector
}

func setupCrashSchema(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	ctx := context.Background()
	st, err := pgstore.New(ctx, pool, testRegistry(t), pgstore.WithSchema(schema))
	require.NoError(t, err)
	require.NoError(t, st.Close())
	q := pgx.Identifier{schema}.Sanitize()
	_, err = pool.Exec(ctx, `
		CREATE TABLE `+q+`.audit (key text NOT NULL, n int NOT NULL);
		CREATE TABLE `+q+`.view_counts (key text PRIMARY KEY, n int NOT NULL);
		CREATE TABLE `+q+`.view_applied (position bigint NOT NULL)`)
	require.NoError(t, err)
}

func newCrashRig(t *testing.T, pool *pgxpool.Pool, schema string) *crashRig {
	t.Helper()
	st, err := pgstore.New(context.Background(), pool, testRegistry(t), pgstore.WithSchema(schema))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	q := pgx.Identifier{schema}.Sanitize()
	counters := store.NewTable[string, counter](st, "counters")
	bus := command.New(st, command.WithMiddleware(command.Retry(20, backoff)))
	registerIncrement(bus, counters,
		func() { time.Sleep(rand.N(500 * time.Microsecond)) },
		func(ctx context.Context, tx store.Tx, key string, n int) error {
			sqlTx, _ := pgstore.SQL(tx)
			_, err := sqlTx.Exec(ctx, "INSERT INTO "+q+".audit VALUES ($1, $2)", key, n)
			return err
		})
	proj := pgstore.NewProjector(st, "view", func(ctx context.Context, tx pgx.Tx, rec event.Record) error {
		inc := rec.Data.(Incremented)
		if _, err := tx.Exec(ctx, "INSERT INTO "+q+".view_counts AS v VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET n = v.n + 1", inc.Key); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO "+q+".view_applied VALUES ($1)", int64(rec.Position))
		return err
	})
	return &crashRig{st: st, bus: bus, proj: proj}
}

// follow feeds the projector from its checkpoint. With stopAtHead it
// returns once the projector has caught up with the log; otherwise it
// follows until ctx ends.
func follow(ctx context.Context, st *pgstore.Store, p *pgstore.Projector, stopAtHead bool) error {
	cp, err := p.LoadCheckpoint(ctx)
	if err != nil {
		return err
	}
	after := cp.Position
	buf := make([]event.Record, 0, 256)
	for {
		recs, err := st.Read(ctx, after, buf[:0])
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := p.Handle(ctx, r); err != nil {
				return err
			}
			after = r.Position
		}
		if len(recs) > 0 {
			continue
		}
		if stopAtHead {
			head, err := committedHead(ctx, st)
			if err != nil || head <= after {
				return err
			}
		}
		if err := st.Wait(ctx, after); err != nil {
			return err
		}
	}
}

// TestCrashChild is the process that TestCrashRecovery kills.
func TestCrashChild(t *testing.T) {
	schema := os.Getenv(crashChildEnv)
	if schema == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	pool := newPool(t, 16)
	rig := newCrashRig(t, pool, schema)
	ctx := context.Background()
	for range 4 {
		go func() {
			for {
				if _, err := command.Dispatch(ctx, rig.bus, Increment{Key: fmt.Sprint("k", rand.IntN(8))}); err != nil {
					fmt.Println("CHILD ERROR dispatch:", err)
				}
			}
		}()
	}
	go func() {
		fmt.Println("CHILD ERROR follow:", follow(ctx, rig.st, rig.proj, false))
	}()
	time.Sleep(60 * time.Second)
	t.Fatal("TestCrashRecovery did not kill this process")
}

// TestCrashRecovery runs commands and the projector in a child process,
// kills it with SIGKILL mid-stream, restarts on the same schema, writes more,
// catches the projector up, and checks that rows, own SQL, the log and the
// read model agree: every event has its row change and vice versa, and no
// event was applied twice or skipped.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("running as the child")
	}
	pool := newPool(t, 16)
	schema := newSchema(t, pool)
	setupCrashSchema(t, pool, schema)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := pgx.Identifier{schema}.Sanitize()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+schema)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	var events, applied int
	require.Eventually(t, func() bool {
		err := pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+q+".events), (SELECT count(*) FROM "+q+".view_applied)").Scan(&events, &applied)
		return err == nil && events >= 300 && applied >= 100
	}, 40*time.Second, 10*time.Millisecond, "the child made no progress:\n%s", &out)
	time.Sleep(rand.N(30 * time.Millisecond))
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no deferred code, no clean disconnect
	killed = true
	err := cmd.Wait()
	require.Error(t, err, "the child should have died")
	require.NotContains(t, out.String(), "CHILD ERROR", "the child failed before the kill")
	require.NoError(t, pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+q+".events), (SELECT count(*) FROM "+q+".view_applied)").Scan(&events, &applied))
	t.Logf("killed the child at %d events, %d applied", events, applied)

	// Restart: the same schema, more commands, and the projector resumes.
	rig := newCrashRig(t, pool, schema)
	for range 100 {
		_, err := command.Dispatch(ctx, rig.bus, Increment{Key: fmt.Sprint("k", rand.IntN(8))})
		require.NoError(t, err)
	}
	require.NoError(t, follow(ctx, rig.st, rig.proj, true))

	// The log: every stream counts 1..n, and each event carries its n.
	type streamStat struct{ count, maxV, minV, badN int }
	perKey := map[string]streamStat{}
	var total int
	rows, _ := pool.Query(ctx, `SELECT substr(stream, 9), count(*), max(version), min(version),
		count(*) FILTER (WHERE (data->>'n')::bigint <> version) FROM `+q+`.events GROUP BY stream`)
	var key string
	var s streamStat
	_, err = pgx.ForEachRow(rows, []any{&key, &s.count, &s.maxV, &s.minV, &s.badN}, func() error {
		perKey[key] = s
		total += s.count
		return nil
	})
	require.NoError(t, err)
	require.GreaterOrEqual(t, total, events+100)
	for k, s := range perKey {
		assert.Equal(t, s.count, s.maxV, "stream of %s has holes or repeats", k)
		assert.Equal(t, 1, s.minV, k)
		assert.Zero(t, s.badN, "events of %s whose n is not their version", k)
	}

	// The rows, the handler's own SQL and the view agree with the log.
	check := func(what, sql string) {
		t.Helper()
		got := map[string]int{}
		rows, _ := pool.Query(ctx, sql)
		var k string
		var n int
		_, err := pgx.ForEachRow(rows, []any{&k, &n}, func() error {
			got[k] = n
			return nil
		})
		require.NoError(t, err)
		require.Len(t, got, len(perKey), what)
		for k, s := range perKey {
			assert.Equal(t, s.count, got[k], "%s of %s", what, k)
		}
	}
	check("counter row value", `SELECT key, (data->>'n')::int FROM `+q+`.rows WHERE table_name = 'counters'`)
	check("counter row version", `SELECT key, version::int FROM `+q+`.rows WHERE table_name = 'counters'`)
	check("audit rows", `SELECT key, count(*)::int FROM `+q+`.audit GROUP BY key`)
	check("audit max", `SELECT key, max(n) FROM `+q+`.audit GROUP BY key`)
	check("view count", `SELECT key, n FROM `+q+`.view_counts`)

	// Every event applied exactly once, nothing else applied.
	var appliedRows, distinct, unmatched int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT position) FROM `+q+`.view_applied`).Scan(&appliedRows, &distinct))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+q+`.events e
		FULL JOIN (SELECT DISTINCT position FROM `+q+`.view_applied) a USING (position)
		WHERE e.id IS NULL OR a.position IS NULL`).Scan(&unmatched))
	assert.Equal(t, total, appliedRows, "applications")
	assert.Equal(t, total, distinct, "distinct positions applied")
	assert.Zero(t, unmatched, "events not applied, or applied positions without an event")

	cp, err := rig.proj.LoadCheckpoint(ctx)
	require.NoError(t, err)
	head, err := committedHead(ctx, rig.st)
	require.NoError(t, err)
	assert.Equal(t, head, cp.Position)
	if t.Failed() {
		t.Logf("child output:\n%s", strings.TrimSpace(out.String()))
	}
}
