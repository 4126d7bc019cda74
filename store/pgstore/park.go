package pgstore

import (
	"cmp"
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
)

// Park implements projection.ParkStore: it adds or replaces the dead letter
// at dl.Record.Position in the dead_letters table: the position, the text
// of dl.Err, Attempts and At (the record stays in the log). Times are kept
// to the microsecond.
//
// Errors: store.ErrClosed; errors matching ctx.Err(); the driver error,
// wrapped.
func (s *Store) Park(ctx context.Context, name string, dl projection.DeadLetter) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	_, err := s.pool.Exec(ctx, s.q.park, name, int64(dl.Record.Position), errText(dl.Err), dl.Attempts, dl.At)
	return wrap(ctx, "park", err)
}

// Unpark implements projection.ParkStore; removing a dead letter that is not
// there is not an error.
//
// Errors: store.ErrClosed; errors matching ctx.Err(); the driver error,
// wrapped.
func (s *Store) Unpark(ctx context.Context, name string, pos event.Position) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	_, err := s.pool.Exec(ctx, s.q.unpark, name, int64(pos))
	return wrap(ctx, "unpark", err)
}

// ReplaceParked implements projection.ParkStore: in one transaction it
// deletes name's dead letters and inserts dls. Of several entries at one
// position, the last one is kept. Concurrent calls for one name run one
// after the other.
//
// Errors: store.ErrClosed; errors matching ctx.Err(); the driver error,
// wrapped.
func (s *Store) ReplaceParked(ctx context.Context, name string, dls []projection.DeadLetter) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	// Sort stably by position and keep the last entry of each position: one
	// INSERT cannot write a key twice.
	list := slices.Clone(dls)
	slices.SortStableFunc(list, func(a, b projection.DeadLetter) int { return cmp.Compare(a.Record.Position, b.Record.Position) })
	n := len(list)
	positions := make([]int64, 0, n)
	errs := make([]string, 0, n)
	attempts := make([]int, 0, n)
	ats := make([]time.Time, 0, n)
	for i, dl := range list {
		if i+1 < n && list[i+1].Record.Position == dl.Record.Position {
			continue
		}
		positions = append(positions, int64(dl.Record.Position))
		errs = append(errs, errText(dl.Err))
		attempts = append(attempts, dl.Attempts)
		ats = append(ats, dl.At)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.q.lockParked, parkLockKey(s.schema, name)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.clearParked, name); err != nil {
			return err
		}
		if len(positions) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, s.q.insertParked, name, positions, errs, attempts, ats)
		return err
	})
	return wrap(ctx, "replace parked", err)
}

// LoadParked implements projection.ParkStore: name's dead letters in
// position order, none (and nil error) for a name that has none. Each has
// only Record.Position set, and Err an error with the stored text (nil for
// an empty one).
//
// Errors: store.ErrClosed; errors matching ctx.Err(); the driver error,
// wrapped.
func (s *Store) LoadParked(ctx context.Context, name string) ([]projection.DeadLetter, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	rows, err := s.pool.Query(ctx, s.q.loadParked, name)
	if err != nil {
		return nil, wrap(ctx, "load parked", err)
	}
	var (
		dl  projection.DeadLetter
		pos int64
		msg string
	)
	dls, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (projection.DeadLetter, error) {
		err := row.Scan(&pos, &msg, &dl.Attempts, &dl.At)
		dl.Record = event.Record{Position: event.Position(pos)}
		dl.Err = nil
		if msg != "" {
			dl.Err = errors.New(msg)
		}
		return dl, err
	})
	if err != nil {
		return nil, wrap(ctx, "load parked", err)
	}
	return dls, nil
}

// parkLockKey is the advisory lock key that serialises ReplaceParked for one
// projector name in one schema. A collision only makes two unrelated calls
// take turns.
func parkLockKey(schema, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("cqrskit/pgstore/dead_letters:" + schema + "\x00" + name))
	return int64(h.Sum64())
}

// errText is the text stored for a dead letter's error.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
