package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// Load implements projection.CheckpointStore: the zero Checkpoint for a name
// never saved.
//
// Errors: store.ErrClosed; errors matching ctx.Err(); the driver error,
// wrapped.
func (s *Store) Load(ctx context.Context, name string) (projection.Checkpoint, error) {
	if err := s.enter(); err != nil {
		return projection.Checkpoint{}, err
	}
	defer s.leave()
	return s.loadCheckpoint(ctx, s.pool, name)
}

type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) loadCheckpoint(ctx context.Context, db rowQuerier, name string) (projection.Checkpoint, error) {
	var pos int64
	var version int32
	err := db.QueryRow(ctx, s.q.loadCheckpoint, name).Scan(&pos, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return projection.Checkpoint{}, nil
	}
	if err != nil {
		return projection.Checkpoint{}, wrap(ctx, "load checkpoint", err)
	}
	return projection.Checkpoint{Position: event.Position(pos), Version: int(version)}, nil
}

// Save implements projection.CheckpointStore. The save is conditional, in
// one statement: it never moves the stored position backwards.
//
// Errors: *store.ConflictError{Table: "checkpoints"} (store.ErrConflict)
// when the stored position is above cp.Position; store.ErrClosed; errors
// matching ctx.Err(); the driver error, wrapped.
func (s *Store) Save(ctx context.Context, name string, cp projection.Checkpoint) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	var saved int64
	err := s.pool.QueryRow(ctx, s.q.saveCheckpoint, name, int64(cp.Position), int32(cp.Version)).Scan(&saved)
	if errors.Is(err, pgx.ErrNoRows) {
		cur, lerr := s.loadCheckpoint(ctx, s.pool, name)
		if lerr != nil {
			return lerr
		}
		return &store.ConflictError{Table: "checkpoints", Key: name, Expected: uint64(cp.Position), Actual: uint64(cur.Position)}
	}
	return wrap(ctx, "save checkpoint", err)
}

// ApplyFunc applies one record to a read model kept in PostgreSQL, using tx
// for every statement. It must not commit or roll back tx.
type ApplyFunc func(ctx context.Context, tx pgx.Tx, rec event.Record) error

// Projector is a projection.Projector whose read model lives in the same
// database as the store and whose checkpoint is written in the transaction
// that updates the read model. It implements projection.SelfCheckpointer, so
// a runner resumes it from that checkpoint: each event's effect is applied
// exactly once, across crashes and redeliveries. Create it with NewProjector.
type Projector struct {
	st    *Store
	name  string
	apply ApplyFunc
}

var (
	_ projection.Projector        = (*Projector)(nil)
	_ projection.SelfCheckpointer = (*Projector)(nil)
	_ projection.Replayer         = (*Projector)(nil)
)

// NewProjector returns a projector named name that runs apply for each
// record. Its checkpoint is the row name in the store's checkpoints table,
// the same one Store.Load reads.
//
// It works under a runner's leases (projection.WithLeases): when the
// context carries a fence (projection.FenceFrom), each transaction checks
// it against the store's leases table first, so a former owner's write is
// refused with a *projection.FencedError and rolled back. Partitioned
// (projection.WithPartitions), it keeps one checkpoint row per partition,
// named after the partition (projection.PartitionFrom).
func NewProjector(st *Store, name string, apply ApplyFunc) *Projector {
	return &Projector{st: st, name: name, apply: apply}
}

// Name implements projection.Projector.
func (p *Projector) Name() string { return p.name }

// LoadCheckpoint implements projection.SelfCheckpointer.
func (p *Projector) LoadCheckpoint(ctx context.Context) (projection.Checkpoint, error) {
	return p.st.Load(ctx, p.checkpoint(ctx))
}

// checkpoint is the name of the checkpoint row ctx's records go with.
func (p *Projector) checkpoint(ctx context.Context) string {
	if part, ok := projection.PartitionFrom(ctx); ok {
		return part.Name
	}
	return p.name
}

// Handle implements projection.Projector. In one transaction it locks the
// projector's checkpoint row, skips the record if the checkpoint is already
// at or past it (a redelivery), runs apply and moves the checkpoint to
// rec.Position. If apply fails, nothing of it stays and the checkpoint does
// not move.
//
// Errors: apply's error, unchanged; *projection.FencedError
// (projection.ErrFenced) when ctx's fence is stale; store.ErrClosed;
// errors matching ctx.Err(); the driver error, wrapped.
func (p *Projector) Handle(ctx context.Context, rec event.Record) error {
	return p.locked(ctx, func(tx pgx.Tx, cur event.Position) (bool, error) {
		if cur >= rec.Position {
			return false, nil
		}
		if err := p.apply(ctx, tx, rec); err != nil {
			return false, err
		}
		tag, err := tx.Exec(ctx, p.st.q.advanceCheckpoint, p.checkpoint(ctx), int64(rec.Position))
		if err != nil {
			return false, wrap(ctx, "save checkpoint", err)
		}
		// No row: another instance created it and got past this record
		// after our lock read found none; its work stands, ours goes.
		return tag.RowsAffected() > 0, nil
	})
}

// Replay implements projection.Replayer, which Runner.Replay uses for a
// parked record: Handle would skip it, because the checkpoint moved past it
// when later records were applied. In one transaction it takes the
// checkpoint row's lock (so it takes turns with Handle), runs apply, and
// removes the record's dead letter from this store's dead_letters table;
// the checkpoint does not move. If apply fails, nothing of it stays.
//
// Errors: apply's error, unchanged; store.ErrClosed; errors matching
// ctx.Err(); the driver error, wrapped.
func (p *Projector) Replay(ctx context.Context, rec event.Record) error {
	return p.locked(ctx, func(tx pgx.Tx, _ event.Position) (bool, error) {
		if err := p.apply(ctx, tx, rec); err != nil {
			return false, err
		}
		if _, err := tx.Exec(ctx, p.st.q.unpark, p.checkpoint(ctx), int64(rec.Position)); err != nil {
			return false, wrap(ctx, "unpark", err)
		}
		return true, nil
	})
}

// locked runs fn in a transaction that holds the lock on the projector's
// checkpoint row, with the checkpoint it read (0 when there is no row yet).
// The lock makes two instances of one projector (say, during a deploy), and
// Handle and Replay, take turns instead of both applying a record. The
// transaction commits when fn returns true and rolls back otherwise, also
// when ctx is done or fn panics.
func (p *Projector) locked(ctx context.Context, fn func(tx pgx.Tx, cur event.Position) (commit bool, err error)) error {
	s := p.st
	return s.inTx(ctx, func(tx pgx.Tx) (bool, error) {
		if fence, ok := projection.FenceFrom(ctx); ok {
			if err := s.checkFence(ctx, tx, fence); err != nil {
				return false, err
			}
		}
		var cur int64
		if err := tx.QueryRow(ctx, s.q.lockCheckpoint, p.checkpoint(ctx)).Scan(&cur); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return false, wrap(ctx, "lock checkpoint", err)
		}
		return fn(tx, event.Position(cur))
	})
}
