package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// The Store is the durable projection.Leaser of a service's processes, and
// the projection.FencedCheckpoints that goes with it: give it to
// projection.WithLeases, and a runner in each process delivers a projector
// (or a partition of one) only while it holds its lease in the store's
// leases table.
var (
	_ projection.Leaser            = (*Store)(nil)
	_ projection.FencedCheckpoints = (*Store)(nil)
)

// Acquire implements projection.Leaser in one statement, by the server's
// clock. Tokens come from the lease's row, which is never deleted, so they
// only ever grow for a name, also across releases.
//
// Errors: *projection.LeaseHeldError (projection.ErrLeaseHeld);
// store.ErrInvalid for an empty name or owner or ttl <= 0;
// store.ErrClosed; errors matching ctx.Err(); the driver error, wrapped
// (store.ErrUnavailable when the server cannot be reached).
func (s *Store) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (projection.Lease, error) {
	if err := projection.CheckAcquireArgs(name, owner, ttl); err != nil {
		return projection.Lease{}, err
	}
	if err := s.enter(); err != nil {
		return projection.Lease{}, err
	}
	defer s.leave()
	for {
		l := projection.Lease{Name: name, Owner: owner}
		var token int64
		err := s.pool.QueryRow(ctx, s.q.acquireLease, name, owner, ttl.Microseconds()).Scan(&token, &l.Expires)
		if err == nil {
			l.Token = uint64(token)
			return l, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return projection.Lease{}, wrap(ctx, "acquire lease", err)
		}
		h, err := s.holder(ctx, name)
		if err != nil {
			return projection.Lease{}, err
		}
		if h.Owner != "" && h.Owner != owner {
			return projection.Lease{}, &projection.LeaseHeldError{Held: h}
		}
		// The holder let go between the two statements: try again.
	}
}

// Renew implements projection.Leaser in one statement.
//
// Errors: *projection.FencedError (projection.ErrFenced) when l is no
// longer the live lease on l.Name; store.ErrInvalid for ttl <= 0; the
// errors of Acquire.
func (s *Store) Renew(ctx context.Context, l projection.Lease, ttl time.Duration) (projection.Lease, error) {
	if err := projection.CheckRenewArgs(l, ttl); err != nil {
		return projection.Lease{}, err
	}
	if err := s.enter(); err != nil {
		return projection.Lease{}, err
	}
	defer s.leave()
	err := s.pool.QueryRow(ctx, s.q.renewLease, l.Name, int64(l.Token), ttl.Microseconds()).Scan(&l.Owner, &l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		h, herr := s.holder(ctx, l.Name)
		if herr != nil {
			return projection.Lease{}, herr
		}
		return projection.Lease{}, &projection.FencedError{Name: l.Name, Token: l.Token, Current: h.Token}
	}
	if err != nil {
		return projection.Lease{}, wrap(ctx, "renew lease", err)
	}
	return l, nil
}

// Release implements projection.Leaser: the row stays, with its token,
// marked free.
//
// Errors: store.ErrClosed; errors matching ctx.Err(); the driver error,
// wrapped.
func (s *Store) Release(ctx context.Context, l projection.Lease) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	_, err := s.pool.Exec(ctx, s.q.releaseLease, l.Name, int64(l.Token))
	return wrap(ctx, "release lease", err)
}

// Holder implements projection.Leaser.
//
// Errors: as Release.
func (s *Store) Holder(ctx context.Context, name string) (projection.Lease, error) {
	if err := s.enter(); err != nil {
		return projection.Lease{}, err
	}
	defer s.leave()
	return s.holder(ctx, name)
}

func (s *Store) holder(ctx context.Context, name string) (projection.Lease, error) {
	l := projection.Lease{Name: name}
	var token int64
	err := s.pool.QueryRow(ctx, s.q.leaseHolder, name).Scan(&l.Owner, &token, &l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return projection.Lease{Name: name}, nil
	}
	if err != nil {
		return projection.Lease{}, wrap(ctx, "read lease", err)
	}
	l.Token = uint64(token)
	return l, nil
}

// List implements projection.Leaser, in byte order of the names.
//
// Errors: as Release.
func (s *Store) List(ctx context.Context, prefix string) ([]projection.Lease, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, s.q.listLeases, prefix)
	if err != nil {
		return nil, wrap(ctx, "list leases", err)
	}
	var out []projection.Lease
	for rows.Next() {
		var l projection.Lease
		var token int64
		if err := rows.Scan(&l.Name, &l.Owner, &token, &l.Expires); err != nil {
			rows.Close()
			return nil, wrap(ctx, "list leases", err)
		}
		l.Token = uint64(token)
		out = append(out, l)
	}
	return out, wrap(ctx, "list leases", rows.Err())
}

// SaveFenced implements projection.FencedCheckpoints: in one transaction
// it share-locks fence's lease row, checks that fence is still the live
// lease, and saves cp as Save does. An Acquire that takes the lease over
// waits for that transaction, so no save under a stale token can commit
// after a new owner has taken over.
//
// Errors: *projection.FencedError (projection.ErrFenced), nothing saved;
// the errors of Save.
func (s *Store) SaveFenced(ctx context.Context, name string, cp projection.Checkpoint, fence projection.Lease) error {
	return s.inTx(ctx, func(tx pgx.Tx) (bool, error) {
		if err := s.checkFence(ctx, tx, fence); err != nil {
			return false, err
		}
		var saved int64
		err := tx.QueryRow(ctx, s.q.saveCheckpoint, name, int64(cp.Position), int32(cp.Version)).Scan(&saved)
		if errors.Is(err, pgx.ErrNoRows) {
			cur, lerr := s.loadCheckpoint(ctx, tx, name)
			if lerr != nil {
				return false, lerr
			}
			return false, &store.ConflictError{Table: "checkpoints", Key: name, Expected: uint64(cp.Position), Actual: uint64(cur.Position)}
		}
		if err != nil {
			return false, wrap(ctx, "save checkpoint", err)
		}
		return true, nil
	})
}

// inTx runs fn in a transaction of its own, counted by Close (enter and
// leave); the transaction commits when fn returns true and rolls back
// otherwise, also when ctx is done or fn panics.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) (commit bool, err error)) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(ctx, "begin", err)
	}
	defer func() {
		// A no-op after Commit; a bounded, uncancelled context so a
		// cancelled caller still releases the connection's transaction.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		_ = tx.Rollback(rctx)
		cancel()
	}()
	commit, err := fn(tx)
	if err != nil || !commit {
		return err
	}
	return wrap(ctx, "commit", tx.Commit(ctx))
}

// checkFence share-locks fence's lease row in tx and returns a
// *projection.FencedError unless fence is the live lease on its name. The
// lock holds until tx ends, so the lease cannot change hands meanwhile.
func (s *Store) checkFence(ctx context.Context, tx pgx.Tx, fence projection.Lease) error {
	var cur int64
	err := tx.QueryRow(ctx, s.q.lockLease, fence.Name).Scan(&cur)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return wrap(ctx, "check lease", err)
	}
	if uint64(cur) != fence.Token || fence.Token == 0 {
		return &projection.FencedError{Name: fence.Name, Token: fence.Token, Current: uint64(cur)}
	}
	return nil
}
