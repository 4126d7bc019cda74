package event

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Event is a domain event payload. EventType names it in the log and in the
// codec registry, so it must be stable across releases and must not depend on
// the receiver's contents: typed routing calls it on the zero value of the type.
type Event interface {
	EventType() string
}

// Position is a global position in the ordered event log. Positions strictly
// increase in commit order; 0 means "before the first event". A Position is the
// read-your-writes token returned by every dispatch: its String form can cross
// an HTTP boundary and come back through ParsePosition.
type Position uint64

// String returns the decimal form of p, which ParsePosition accepts.
func (p Position) String() string { return strconv.FormatUint(uint64(p), 10) }

// MarshalText implements encoding.TextMarshaler so a Position serialises as a
// token in JSON, headers and query strings.
func (p Position) MarshalText() ([]byte, error) {
	return strconv.AppendUint(nil, uint64(p), 10), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts what String
// produces.
func (p *Position) UnmarshalText(b []byte) error {
	v, err := ParsePosition(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ErrBadPosition is matched by the error ParsePosition returns for malformed
// input.
var ErrBadPosition = errors.New("event: malformed position token")

// ParsePosition parses a token produced by Position.String. The error matches
// ErrBadPosition.
func ParsePosition(s string) (Position, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w %q", ErrBadPosition, s)
	}
	return Position(v), nil
}

// Metadata travels with every record. Dispatch copies it from the command's
// context (see WithMetadata) into each event it commits.
type Metadata struct {
	// CorrelationID ties together everything caused by one user request.
	CorrelationID string
	// CausationID names the message (command or event) that caused this one.
	CausationID string
	// UserID identifies the actor, for audit and authorization middleware.
	UserID string
	// TraceParent is the W3C Trace Context traceparent of the request that
	// caused the event ("00-<trace-id>-<span-id>-<flags>"), so a consumer in
	// another process can continue the trace. The library stores and
	// forwards it; it never parses it.
	TraceParent string
}

type metadataKey struct{}

// WithMetadata returns a context carrying md; events committed by a dispatch
// under that context carry a copy of it.
func WithMetadata(ctx context.Context, md Metadata) context.Context {
	return context.WithValue(ctx, metadataKey{}, md)
}

// MetadataFrom returns the metadata stored by WithMetadata, or the zero value.
func MetadataFrom(ctx context.Context) Metadata {
	md, _ := ctx.Value(metadataKey{}).(Metadata)
	return md
}

// Record is the envelope of one committed event. Records are values: the log
// hands out copies, and Data must be treated as immutable by every reader.
type Record struct {
	// ID is unique per event; consumers that receive at-least-once deliveries
	// deduplicate by it.
	ID uuid.UUID
	// Type is Data.EventType().
	Type string
	// Stream names the aggregate the event belongs to, e.g. "product/p-1".
	Stream string
	// Version is the event's 1-based version within Stream.
	Version uint64
	// Position is the event's global position in the log.
	Position Position
	// Time is the commit time.
	Time time.Time
	// Metadata is copied from the dispatching context.
	Metadata Metadata
	// Data is the typed payload.
	Data Event
}
