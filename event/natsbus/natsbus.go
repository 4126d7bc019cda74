package natsbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Header names set on every message the Relay publishes. The Nats-Msg-Id
// header (JetStream's deduplication key) is the record's ID.
const (
	HeaderPosition      = "Cqrs-Position"
	HeaderPrevPosition  = "Cqrs-Prev-Position"
	HeaderStream        = "Cqrs-Stream"
	HeaderVersion       = "Cqrs-Version"
	HeaderType          = "Cqrs-Type"
	HeaderTime          = "Cqrs-Time"
	HeaderCorrelationID = "Cqrs-Correlation-Id"
	HeaderCausationID   = "Cqrs-Causation-Id"
	HeaderUserID        = "Cqrs-User-Id"
	// HeaderTraceParent carries event.Metadata.TraceParent under the name
	// W3C Trace Context gives it, so NATS-aware tracing picks it up as is.
	HeaderTraceParent = "traceparent"
)

// Defaults for the options.
const (
	DefaultStream        = "CQRS"
	DefaultSubjectPrefix = "cqrs"
	DefaultWindow        = 1024
)

// Sentinel errors of the Follower (and, for ErrMalformed, the Relay's view
// of the stream). The typed errors below match them with errors.Is.
var (
	// ErrRetention: the records a reader needs next have been removed from
	// the stream by its retention limits (max age, bytes, messages) or a
	// purge. The stream can no longer bring this reader up to date: rebuild
	// its read models from the source log (or from a snapshot) and follow
	// the stream from there.
	ErrRetention = errors.New("natsbus: records dropped by the stream's retention; rebuild from the source log")
	// ErrGap: the stream does not carry the source log in order: a message's
	// predecessor is not the record delivered before it. The stream was
	// written by something other than one fenced Relay, or damaged.
	ErrGap = errors.New("natsbus: gap in the stream")
	// ErrMalformed: a message on the stream's subjects is not a record the
	// Relay wrote (missing or bad headers, a payload that does not decode).
	ErrMalformed = errors.New("natsbus: malformed message")
)

// RetentionError reports that the stream no longer holds the records after
// After. It matches ErrRetention.
type RetentionError struct {
	Stream string
	// After is the position the reader asked to read after.
	After event.Position
	// FirstSeq is the stream's first remaining sequence and FirstPrev the
	// source position before the record it holds.
	FirstSeq  uint64
	FirstPrev event.Position
}

func (e *RetentionError) Error() string {
	return fmt.Sprintf("natsbus: stream %s dropped the records after position %v up to %v (first sequence now %d); rebuild the read models from the source log",
		e.Stream, e.After, e.FirstPrev, e.FirstSeq)
}

// Is makes RetentionError match ErrRetention.
func (e *RetentionError) Is(target error) bool { return target == ErrRetention }

// GapError reports a message whose predecessor in the source log is not the
// record the reader saw before it. It matches ErrGap.
type GapError struct {
	Stream string
	// Seq is the stream sequence of the offending message.
	Seq uint64
	// After is the position of the record delivered before it (or the
	// position the reader resumed after).
	After event.Position
	// Prev and Position are what the message says: its predecessor and
	// its own position.
	Prev, Position event.Position
}

func (e *GapError) Error() string {
	return fmt.Sprintf("natsbus: stream %s sequence %d holds position %v after %v, but the reader is at %v",
		e.Stream, e.Seq, e.Position, e.Prev, e.After)
}

// Is makes GapError match ErrGap.
func (e *GapError) Is(target error) bool { return target == ErrGap }

// MalformedError reports a message that is not a record the Relay wrote.
// It matches ErrMalformed and unwraps to the cause, if any. When the
// message names its position, the Follower returns it inside a
// *store.RecordError so that a projection.Runner applies its Stop or Park
// policy at that position.
type MalformedError struct {
	Stream  string
	Seq     uint64
	Subject string
	// After is the position of the last good record before it.
	After  event.Position
	Reason string
	Err    error
}

func (e *MalformedError) Error() string {
	s := fmt.Sprintf("natsbus: malformed message at stream %s sequence %d (subject %q, after position %v): %s",
		e.Stream, e.Seq, e.Subject, e.After, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes MalformedError match ErrMalformed.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

// Unwrap returns the cause.
func (e *MalformedError) Unwrap() error { return e.Err }

// UnavailableError reports a failure of NATS rather than of the data:
// connection lost or refused, server restarting, a request timing out, the
// stream not (yet) there. It matches store.ErrUnavailable, so a
// projection.Runner retries it with backoff (state Unavailable) instead of
// applying its failure policy, and unwraps to the client's error.
type UnavailableError struct {
	Op  string
	Err error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("natsbus: %s: NATS unavailable: %v", e.Op, e.Err)
}

// Is makes UnavailableError match store.ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == store.ErrUnavailable }

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// unavailable wraps a NATS client error. The caller's own cancellation is
// returned as it is.
func unavailable(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &UnavailableError{Op: op, Err: err}
}

// Option configures a Relay or a Follower.
type Option func(*config)

type config struct {
	stream   string
	prefix   string
	window   int
	sync     bool
	streamFn func(*jetstream.StreamConfig)
	headers  func(event.Record, nats.Header)
	skip     func(*MalformedError)
}

func newConfig(opts []Option) config {
	c := config{stream: DefaultStream, prefix: DefaultSubjectPrefix, window: DefaultWindow}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithStream names the JetStream stream (default DefaultStream).
func WithStream(name string) Option { return func(c *config) { c.stream = name } }

// WithSubjectPrefix sets the subject prefix (default DefaultSubjectPrefix).
// The Relay publishes each record to <prefix>.<category>.<type> (see
// Subject), and creates the stream on <prefix>.>.
func WithSubjectPrefix(prefix string) Option { return func(c *config) { c.prefix = prefix } }

// WithWindow bounds how many publishes the Relay keeps in flight (default
// DefaultWindow). Relay only.
func WithWindow(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.window = n
		}
	}
}

// WithSync makes the Relay publish one record at a time and wait for each
// acknowledgement: the slow baseline the pipelined relay is measured
// against. Relay only.
func WithSync() Option { return func(c *config) { c.sync = true } }

// WithStreamConfig lets the Relay adjust the configuration of the stream it
// creates when the stream does not exist yet (retention limits, storage,
// replicas). An existing stream's configuration is left alone. Relay only.
func WithStreamConfig(fn func(*jetstream.StreamConfig)) Option {
	return func(c *config) { c.streamFn = fn }
}

// WithHeaders adds headers of your own to each published message (the
// record's metadata, traceparent included, is already carried). Relay
// only.
func WithHeaders(fn func(rec event.Record, h nats.Header)) Option {
	return func(c *config) { c.headers = fn }
}

// SkipMalformed makes the Follower skip messages that carry no position
// (foreign messages on the stream's subjects), reporting each to fn, instead
// of stopping at them with a *MalformedError. Messages that do name a
// position but do not decode are never skipped here: they go to the
// runner's policy as a *store.RecordError. Follower only.
func SkipMalformed(fn func(*MalformedError)) Option {
	return func(c *config) {
		if fn == nil {
			fn = func(*MalformedError) {}
		}
		c.skip = fn
	}
}

// Subject returns the subject the Relay publishes a record of type typ on
// stream (an aggregate stream such as "product/p-1") to:
// <prefix>.<category>.<type>, where the category is stream's part before
// the first "/". Characters NATS reserves in tokens are replaced by "_";
// the dots of a type name are kept, so "catalog.price_changed" spans two
// tokens.
func Subject(prefix, stream, typ string) string {
	cat, _, _ := strings.Cut(stream, "/")
	var b strings.Builder
	b.Grow(len(prefix) + len(cat) + len(typ) + 2)
	b.WriteString(prefix)
	b.WriteByte('.')
	b.WriteString(token(cat))
	for part := range strings.SplitSeq(typ, ".") {
		b.WriteByte('.')
		b.WriteString(token(part))
	}
	return b.String()
}

// ByCategory returns a subject filter for the records of one stream
// category (say "product"), for consumers of the stream other than the
// Follower.
func ByCategory(prefix, category string) string { return prefix + "." + token(category) + ".>" }

// ByType returns a subject filter for the records of one event type.
func ByType(prefix, typ string) string {
	s := Subject(prefix, "", typ)
	// Replace the (empty) category token by a wildcard.
	return prefix + ".*" + s[len(prefix)+2:]
}

func token(s string) string {
	if s == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if reserved(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := []byte(s)
	for i := range b {
		if reserved(b[i]) {
			b[i] = '_'
		}
	}
	return string(b)
}

func reserved(c byte) bool {
	return c == '.' || c == '*' || c == '>' || c <= ' ' || c == 0x7f
}

// encode builds the message for rec.
func encode(c *config, reg *event.Registry, rec *event.Record, prev event.Position, subject string) (*nats.Msg, error) {
	data, err := reg.Marshal(rec.Data)
	if err != nil {
		return nil, &store.RecordError{Position: rec.Position, Type: rec.Type, Err: err}
	}
	// One backing array for the header values: a message costs a few
	// allocations, not one per header.
	vals := make([]string, 0, 12)
	h := make(nats.Header, 14)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	var num [20]byte
	set(jetstream.MsgIDHeader, rec.ID.String())
	set(HeaderPosition, string(strconv.AppendUint(num[:0], uint64(rec.Position), 10)))
	set(HeaderPrevPosition, string(strconv.AppendUint(num[:0], uint64(prev), 10)))
	set(HeaderStream, rec.Stream)
	set(HeaderVersion, string(strconv.AppendUint(num[:0], rec.Version, 10)))
	set(HeaderType, rec.Type)
	set(HeaderTime, rec.Time.Format(time.RFC3339Nano))
	if md := rec.Metadata; md != (event.Metadata{}) {
		if md.CorrelationID != "" {
			set(HeaderCorrelationID, md.CorrelationID)
		}
		if md.CausationID != "" {
			set(HeaderCausationID, md.CausationID)
		}
		if md.UserID != "" {
			set(HeaderUserID, md.UserID)
		}
		if md.TraceParent != "" {
			set(HeaderTraceParent, md.TraceParent)
		}
	}
	if c.headers != nil {
		c.headers(*rec, h)
	}
	return &nats.Msg{Subject: subject, Header: h, Data: data}, nil
}

// positions reads a message's own and predecessor positions; ok is false
// when the message does not carry them.
func positions(h nats.Header) (pos, prev event.Position, ok bool) {
	p, err1 := strconv.ParseUint(first(h, HeaderPosition), 10, 64)
	q, err2 := strconv.ParseUint(first(h, HeaderPrevPosition), 10, 64)
	if err1 != nil || err2 != nil || p == 0 || q >= p {
		return 0, 0, false
	}
	return event.Position(p), event.Position(q), true
}

func first(h nats.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// decode turns a message into a record. The position must already have been
// read with positions.
func decode(reg *event.Registry, h nats.Header, data []byte, pos event.Position, rec *event.Record) error {
	rec.Position = pos
	rec.Type = first(h, HeaderType)
	rec.Stream = first(h, HeaderStream)
	var err error
	if rec.ID, err = uuid.Parse(first(h, jetstream.MsgIDHeader)); err != nil {
		return fmt.Errorf("message ID: %w", err)
	}
	if rec.Version, err = strconv.ParseUint(first(h, HeaderVersion), 10, 64); err != nil {
		return fmt.Errorf("stream version: %w", err)
	}
	if rec.Time, err = time.Parse(time.RFC3339Nano, first(h, HeaderTime)); err != nil {
		return fmt.Errorf("commit time: %w", err)
	}
	rec.Metadata = event.Metadata{
		CorrelationID: first(h, HeaderCorrelationID),
		CausationID:   first(h, HeaderCausationID),
		UserID:        first(h, HeaderUserID),
		TraceParent:   first(h, HeaderTraceParent),
	}
	if rec.Data, err = reg.Unmarshal(rec.Type, data); err != nil {
		return err
	}
	return nil
}
