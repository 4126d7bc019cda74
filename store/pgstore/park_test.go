package pgstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// tickView is an in-memory projector that fails on the Tick with Seq
// failSeq while fault is set.
type tickView struct {
	failSeq int
	fault   *atomic.Bool
	mu      sync.Mutex
	applied []int
}

var errTickFault = errors.New("tick view: injected fault")

func (v *tickView) Name() string { return "ticks" }

func (v *tickView) Handle(_ context.Context, rec event.Record) error {
	seq := rec.Data.(Tick).Seq
	if seq == v.failSeq && v.fault.Load() {
		return errTickFault
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.applied = append(v.applied, seq)
	return nil
}

func (v *tickView) seqs() []int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]int(nil), v.applied...)
}

type deadLetterRow struct {
	Position int64
	Err      string
	Attempts int32
}

// deadLetterRows reads schema's dead_letters table for name directly.
func deadLetterRows(t *testing.T, pool *pgxpool.Pool, schema, name string) []deadLetterRow {
	t.Helper()
	table := pgx.Identifier{schema, "dead_letters"}.Sanitize()
	rows, err := pool.Query(context.Background(), "SELECT position, err, attempts FROM "+table+" WHERE name = $1 ORDER BY position", name)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[deadLetterRow])
	require.NoError(t, err)
	return got
}

// TestParkedSurvivesRestart: an async projector with policy Park parks an
// event in PostgreSQL; a new store and runner (a restart) list it again with
// the record read back from the log, and Replay after the fix removes it.
func TestParkedSurvivesRestart(t *testing.T) {
	pool := newPool(t, 8)
	st := newStore(t, pool, pgstore.WithPollInterval(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var fault atomic.Bool
	fault.Store(true)

	var positions []event.Position
	for i := 1; i <= 3; i++ {
		pos, err := st.Update(ctx, func(tx store.Tx) error {
			tx.Record("clock", Tick{Seq: i})
			return nil
		})
		require.NoError(t, err)
		positions = append(positions, pos)
	}
	bad := positions[1]
	opts := []projection.AddOption{projection.AsAsync(), projection.WithPolicy(projection.Park), projection.WithRetry(2, nil)}

	// First run: event 2 fails twice and is parked; 1 and 3 are applied.
	v1 := &tickView{failSeq: 2, fault: &fault}
	r1 := projection.NewRunner(st, projection.WithCheckpoints(st))
	require.NoError(t, r1.Add(v1, opts...))
	require.NoError(t, r1.Start(ctx))
	require.NoError(t, r1.WaitFor(ctx, v1.Name(), positions[2]))
	assert.Equal(t, []int{1, 3}, v1.seqs())
	parked, err := r1.Parked(v1.Name())
	require.NoError(t, err)
	require.Len(t, parked, 1)
	require.Equal(t, bad, parked[0].Record.Position)
	first := parked[0]
	require.NoError(t, r1.Close())
	assert.Equal(t, []deadLetterRow{{Position: int64(bad), Err: errTickFault.Error(), Attempts: 2}},
		deadLetterRows(t, pool, st.Schema(), v1.Name()), "the dead letter is in PostgreSQL")
	require.NoError(t, st.Close())

	// Restart: a new store on the same schema, a new runner and projector.
	st2, err := pgstore.New(ctx, pool, testRegistry(t), pgstore.WithSchema(st.Schema()), pgstore.WithPollInterval(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st2.Close() })
	v2 := &tickView{failSeq: 2, fault: &fault}
	r2 := projection.NewRunner(st2, projection.WithCheckpoints(st2))
	t.Cleanup(func() { _ = r2.Close() })
	require.NoError(t, r2.Add(v2, opts...))
	require.NoError(t, r2.Start(ctx))
	require.NoError(t, r2.WaitFor(ctx, v2.Name(), positions[2]))
	assert.Empty(t, v2.seqs(), "the restarted runner resumes after the checkpoint")
	parked, err = r2.Parked(v2.Name())
	require.NoError(t, err)
	require.Len(t, parked, 1, "the dead letter survives the restart")
	got := parked[0]
	assert.Equal(t, bad, got.Record.Position)
	assert.Equal(t, first.Record.ID, got.Record.ID)
	assert.Equal(t, "clock", got.Record.Stream)
	assert.Equal(t, Tick{Seq: 2}, got.Record.Data, "the record is read back from the log")
	assert.EqualError(t, got.Err, errTickFault.Error())
	assert.Equal(t, 2, got.Attempts)
	assert.True(t, got.At.Equal(first.At.Truncate(time.Microsecond)) || got.At.Equal(first.At.Round(time.Microsecond)),
		"parked at %v, loaded %v", first.At, got.At)
	status, err := r2.StatusOf(ctx, v2.Name())
	require.NoError(t, err)
	assert.Equal(t, 1, status.Parked)

	// While the fault persists, Replay fails and the dead letter stays.
	require.ErrorIs(t, r2.Replay(ctx, v2.Name(), bad), errTickFault)
	assert.Len(t, deadLetterRows(t, pool, st2.Schema(), v2.Name()), 1)

	// Fixed: Replay applies it and removes it from the table.
	fault.Store(false)
	require.NoError(t, r2.Replay(ctx, v2.Name(), bad))
	assert.Equal(t, []int{2}, v2.seqs())
	parked, err = r2.Parked(v2.Name())
	require.NoError(t, err)
	assert.Empty(t, parked)
	assert.Empty(t, deadLetterRows(t, pool, st2.Schema(), v2.Name()), "Replay removed the dead letter from PostgreSQL")
	dls, err := st2.LoadParked(ctx, v2.Name())
	require.NoError(t, err)
	assert.Empty(t, dls)
}
