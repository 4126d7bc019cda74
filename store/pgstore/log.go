package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Read implements store.Log. It returns only records below the gap-safe
// horizon (see the package doc), so it may return fewer records than exist,
// or none, while an older transaction is still open; it never returns a
// record that a later Read could precede with another.
//
// Errors: store.ErrClosed; errors matching ctx.Err(); event.ErrUnknownType
// for a payload type missing from the registry (dst is returned unchanged, so
// the reader stops at that record instead of skipping it); otherwise the
// driver error, wrapped.
func (s *Store) Read(ctx context.Context, after event.Position, dst []event.Record) ([]event.Record, error) {
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
		e, err := s.reg.Unmarshal(typ, data)
		if err != nil {
			return dst[:n], fmt.Errorf("pgstore: read position %d: %w", pos, err)
		}
		var md metadataJSON
		if err := json.Unmarshal(mdb, &md); err != nil {
			return dst[:n], fmt.Errorf("pgstore: read position %d: metadata: %w", pos, err)
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

// StreamVersion returns the committed version of a stream (0 if it has no
// events).
func (s *Store) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var v int64
	if err := s.pool.QueryRow(ctx, s.q.streamVersion, stream).Scan(&v); err != nil {
		return 0, wrap(ctx, "read stream version", err)
	}
	return uint64(v), nil
}
