package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// Read implements store.Log. It returns only records below the gap-safe
// horizon (see the package doc), so it may return fewer records than exist,
// or none, while an older transaction is still open; it never returns a
// record that a later Read could precede with another.
//
// Errors: store.ErrClosed; errors matching ctx.Err(); a *store.RecordError
// matching event.ErrUnknownType for a payload type missing from the registry
// (or wrapping the decode error of bad metadata): the records before it are
// appended to dst and returned with it, so the reader applies them and
// stops at that record instead of skipping it; otherwise the driver error,
// wrapped (matching store.ErrUnavailable when the server cannot be reached).
func (s *Store) Read(ctx context.Context, after event.Position, dst []event.Record) ([]event.Record, error) {
	return s.read(ctx, after, dst, nil)
}

// ReadPartition implements projection.PartitionReader: it is Read, except
// that the records of streams outside p come back with Data nil and Metadata
// zero, without decoding them, so n partitions reading the log in one
// process decode each payload once, not n times.
func (s *Store) ReadPartition(ctx context.Context, after event.Position, dst []event.Record, p projection.Partition) ([]event.Record, error) {
	return s.read(ctx, after, dst, &p)
}

// read is Read, leaving the payloads of records outside part (when not
// nil) undecoded.
func (s *Store) read(ctx context.Context, after event.Position, dst []event.Record, part *projection.Partition) ([]event.Record, error) {
	if err := s.enter(); err != nil {
		return dst, err
	}
	defer s.leave()
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	if after >= math.MaxInt64 {
		return dst, nil // positions are positive bigints
	}
	limit := cap(dst) - len(dst)
	if limit <= 0 {
		limit = store.DefaultReadBatch
	}
	rows, err := s.pool.Query(ctx, s.q.read, int64(after), limit)
	if err != nil {
		return dst, wrap(ctx, "read", err)
	}
	defer rows.Close()
	n := len(dst)
	for rows.Next() {
		var (
			pos, version int64
			id           uuid.UUID
			stream, typ  string
			data, mdb    []byte
			at           time.Time
		)
		if err := rows.Scan(&pos, &id, &stream, &version, &typ, &data, &mdb, &at); err != nil {
			return dst[:n], wrap(ctx, "read", err)
		}
		if part != nil && projection.PartitionOf(stream, part.Count) != part.Index {
			dst = append(dst, event.Record{ID: id, Type: typ, Stream: stream, Version: uint64(version), Position: event.Position(pos), Time: at})
			continue
		}
		// A record that cannot be decoded ends the batch: the records
		// before it are returned with the error, so that a reader applies
		// them and then stops (or parks) at this one.
		e, err := s.reg.Unmarshal(typ, data)
		if err != nil {
			return dst, &store.RecordError{Position: event.Position(pos), Type: typ, Err: fmt.Errorf("pgstore: read position %d: %w", pos, err)}
		}
		var md metadataJSON
		if err := json.Unmarshal(mdb, &md); err != nil {
			return dst, &store.RecordError{Position: event.Position(pos), Type: typ, Err: fmt.Errorf("pgstore: read position %d: metadata: %w", pos, err)}
		}
		dst = append(dst, event.Record{
			ID:       id,
			Type:     typ,
			Stream:   stream,
			Version:  uint64(version),
			Position: event.Position(pos),
			Time:     at,
			Metadata: event.Metadata(md),
			Data:     e,
		})
	}
	if err := rows.Err(); err != nil {
		return dst[:n], wrap(ctx, "read", err)
	}
	return dst, nil
}

// Head implements store.Log: the highest position below the gap-safe
// horizon, which is what Read can return.
//
// Errors: store.ErrClosed; errors matching ctx.Err(); the driver error,
// wrapped.
func (s *Store) Head(ctx context.Context) (event.Position, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var head int64
	if err := s.pool.QueryRow(ctx, s.q.head).Scan(&head); err != nil {
		return 0, wrap(ctx, "read head", err)
	}
	return event.Position(head), nil
}

// CountEvents implements store.EventCounter: the number of committed
// records with after < position <= upTo, counting at most limit. It sees
// records above the gap-safe horizon too, so a projection's Status can say
// how many committed events it has still to apply.
//
// Errors: store.ErrClosed; errors matching ctx.Err(); the driver error,
// wrapped.
func (s *Store) CountEvents(ctx context.Context, after, upTo event.Position, limit uint64) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	if after >= math.MaxInt64 || upTo <= after || limit == 0 {
		return 0, nil
	}
	upTo = min(upTo, math.MaxInt64)
	limit = min(limit, math.MaxInt64)
	var n int64
	if err := s.pool.QueryRow(ctx, s.q.countEvents, int64(after), int64(upTo), int64(limit)).Scan(&n); err != nil {
		return 0, wrap(ctx, "count events", err)
	}
	return uint64(n), nil
}

// HeldBack implements store.HorizonReporter: it returns nil when every
// committed record is readable, and otherwise the readable and committed
// heads with the oldest transaction of the cluster that holds the horizon
// back (any database: pg_snapshot_xmin is cluster-wide). PID, Database and
// Age come from pg_stat_activity, or from pg_prepared_xacts for a prepared
// transaction (PID 0, Reason names it); a role that may not see the other
// backend's transaction id gets PID 0 and a Reason saying so. Set
// idle_in_transaction_session_timeout to bound how long a forgotten
// transaction can hold the log back.
//
// Errors: store.ErrClosed; errors matching ctx.Err(); the driver error,
// wrapped.
func (s *Store) HeldBack(ctx context.Context) (*store.HeldBack, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var committed, readable int64
	if err := s.pool.QueryRow(ctx, s.q.heads).Scan(&committed, &readable); err != nil {
		return nil, wrap(ctx, "read heads", err)
	}
	if committed <= readable {
		return nil, nil
	}
	hb := &store.HeldBack{Readable: event.Position(readable), Head: event.Position(committed)}
	var (
		pid     int32
		db, gid string
		age     float64
	)
	err := s.pool.QueryRow(ctx, s.q.blocker).Scan(&pid, &db, &gid, &age)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		hb.Reason = "an older transaction that this role cannot see (or that has just ended)"
		return hb, nil
	case err != nil:
		return nil, wrap(ctx, "find the oldest transaction", err)
	}
	hb.PID, hb.Database, hb.Age = int(pid), db, time.Duration(age*float64(time.Second))
	if gid != "" {
		hb.Reason = fmt.Sprintf("prepared transaction %q in database %q, prepared %v ago", gid, db, hb.Age.Round(time.Second))
	} else {
		hb.Reason = fmt.Sprintf("transaction of pid %d in database %q, open for %v", pid, db, hb.Age.Round(time.Second))
	}
	return hb, nil
}
