package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/event"
)

// SetBeforeCommit makes every unit of work of s that records events call f
// after its events are appended and before it commits: a slow commit, for
// tests. Set it before the store is used.
func SetBeforeCommit(s *Store, f func(ctx context.Context)) { s.beforeCommit = f }

// MigrationCount returns the number of schema migrations this build knows.
func MigrationCount() int { return len(migrations) }

var IsUnavailable = isUnavailable

// ProjectorTx runs fn as p's Handle runs its apply: in one transaction
// that checks ctx's fence and holds the lock on p's checkpoint row (the
// partition's, when ctx carries one), with the checkpoint it read. For
// the tests' batching projectors.
func ProjectorTx(ctx context.Context, p *Projector, fn func(tx pgx.Tx, cur event.Position) (commit bool, err error)) error {
	return p.locked(ctx, fn)
}

// AdvanceCheckpoint moves p's checkpoint (ctx's partition's) to pos in tx,
// unless it is already there or past it.
func AdvanceCheckpoint(ctx context.Context, p *Projector, tx pgx.Tx, pos event.Position) error {
	_, err := tx.Exec(ctx, p.st.q.advanceCheckpoint, p.checkpoint(ctx), int64(pos))
	return err
}
