package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cqrskit/cqrs/event"
)

// Sentinel errors. Typed errors below match them with errors.Is.
var (
	// ErrNotFound: a row or stream does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: an optimistic-concurrency check failed; re-reading and
	// retrying the unit of work may succeed.
	ErrConflict = errors.New("store: conflict")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrAlreadyExists: an insert found the row already there. Unlike
	// ErrConflict it is permanent: retrying the same unit of work cannot
	// succeed, so retry middleware must not re-run it.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrInvalid: a value cannot be stored faithfully (a nil event, a key or
	// row the store cannot represent, text the database rejects). It is
	// permanent and never retried.
	ErrInvalid = errors.New("store: invalid value")
	// ErrUnavailable: the backing infrastructure failed (connection refused
	// or reset, server shutting down, timeout), not the data. The same call
	// may succeed later; projection runners retry such failures for as
	// long as they last instead of applying their Stop or Park policy.
	// Durable stores wrap driver errors so that both this sentinel and the
	// cause are reachable.
	ErrUnavailable = errors.New("store: unavailable")
)

// AlreadyExistsError reports an Insert of a key that is already present. It
// matches ErrAlreadyExists (and not ErrConflict).
type AlreadyExistsError struct {
	// Table is the table name.
	Table string
	// Key is the encoded row key.
	Key string
}

func (e *AlreadyExistsError) Error() string {
	return fmt.Sprintf("store: %s row %s already exists", e.Table, e.Key)
}

// Is makes AlreadyExistsError match ErrAlreadyExists.
func (e *AlreadyExistsError) Is(target error) bool { return target == ErrAlreadyExists }

// InvalidError reports a value the store refuses because it cannot store it
// faithfully. It matches ErrInvalid and unwraps to the cause, if any.
type InvalidError struct {
	// What names the offending value: "event", a table row, a key.
	What string
	// Reason says what is wrong with it.
	Reason string
	// Err is the underlying cause (a driver error, say), or nil.
	Err error
}

func (e *InvalidError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("store: invalid %s: %s: %v", e.What, e.Reason, e.Err)
	}
	return fmt.Sprintf("store: invalid %s: %s", e.What, e.Reason)
}

// Is makes InvalidError match ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the cause.
func (e *InvalidError) Unwrap() error { return e.Err }

// ConflictError reports a failed optimistic-concurrency check on a table row
// or an event stream. It matches ErrConflict.
type ConflictError struct {
	// Table is the table name, or "" for a stream conflict.
	Table string
	// Key is the row key or the stream name.
	Key string
	// Expected is the version the caller expected (0 = must not exist).
	Expected uint64
	// Actual is the version found.
	Actual uint64
}

func (e *ConflictError) Error() string {
	what := "stream " + e.Key
	if e.Table != "" {
		what = fmt.Sprintf("%s row %s", e.Table, e.Key)
	}
	return fmt.Sprintf("store: conflict on %s: expected version %d, found %d", what, e.Expected, e.Actual)
}

// Is makes ConflictError match ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// NotFoundError reports that something does not exist: a table row, or an
// entity a command refers to. It matches ErrNotFound. The store's tables
// return it, and command handlers return it (through NotFound) for a
// missing entity, so callers handle both the same way.
type NotFoundError struct {
	// What names the missing thing: a table name, or a kind of entity
	// such as "product".
	What string
	// Key identifies it: a row key in Table's encoding, or an entity ID.
	Key string
}

// NotFound returns a *NotFoundError for what (a table name or an entity
// kind) and key.
func NotFound(what, key string) *NotFoundError { return &NotFoundError{What: what, Key: key} }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("store: %s %s not found", e.What, e.Key)
}

// Is makes NotFoundError match ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Tx is a unit of work. A command handler reads and writes tables through it
// and records the events that describe its change; Store.Update commits both
// together or neither. A Tx is bound to the context passed to Update (like a
// transaction started with database/sql's BeginTx) and must not be used after
// Update returns or from another goroutine.
type Tx interface {
	// Context returns the context of the unit of work. Table operations use
	// it for I/O on durable stores.
	Context() context.Context
	// Record adds an event to stream; it is appended to the log at the
	// stream's next version when the unit of work commits. A nil event, or
	// a stream name that is not valid UTF-8 or holds a NUL byte, makes the
	// unit of work fail: Update returns a *InvalidError (ErrInvalid) and
	// commits nothing, even if fn returns nil.
	Record(stream string, e event.Event)
	// StreamVersion returns the stream's current version, counting events
	// recorded earlier in this unit of work; 0 for a new stream. An invalid
	// stream name (see Record) gives a *InvalidError.
	StreamVersion(stream string) (uint64, error)
	// ExpectVersion fails with a *ConflictError unless StreamVersion(stream)
	// equals version. Stores re-check it at commit, so it also guards
	// against a concurrent writer on a durable store.
	ExpectVersion(stream string, version uint64) error
}

// StreamRecorder is an optional Tx capability: RecordIn(prefix, id, e) does
// what Record(prefix+id, e) does, with the same errors, but lets the store
// find the stream without the caller building its name, which saves an
// allocation per event on a hot path. Call it through the RecordIn function,
// which falls back to Record on a Tx without it. store.Memory implements it.
type StreamRecorder interface {
	RecordIn(prefix, id string, e event.Event)
}

// RecordIn records e to the stream named prefix+id ("product/" and an ID,
// say): through tx's StreamRecorder capability when it has one, else with
// tx.Record(prefix+id, e). See Tx.Record for the rules.
func RecordIn(tx Tx, prefix, id string, e event.Event) {
	if r, ok := tx.(StreamRecorder); ok {
		r.RecordIn(prefix, id, e)
		return
	}
	tx.Record(prefix+id, e)
}

// Store is the write side: it runs units of work and commits their state and
// events atomically.
type Store interface {
	// Update runs fn in a new unit of work. If fn returns nil, its table
	// writes and recorded events commit atomically and Update returns the
	// position of the last event committed (or the log head when fn recorded
	// none), which is the read-your-writes token. If fn returns an error or
	// panics, everything is rolled back; the error is returned unchanged
	// and a panic is re-raised after the rollback.
	//
	// Errors: fn's error; *ConflictError (ErrConflict) when a version check
	// fails at commit; *InvalidError (ErrInvalid) when fn recorded a nil
	// event or used an invalid stream name; ErrClosed; ctx.Err() when ctx
	// is done before fn runs.
	Update(ctx context.Context, fn func(tx Tx) error) (event.Position, error)
}

// DefaultReadBatch is how many records Log.Read returns at most when dst has
// no spare capacity.
const DefaultReadBatch = 256

// Log is the ordered, committed event log with global positions.
type Log interface {
	// Read appends to dst the committed records with position > after, in
	// position order, at most cap(dst)-len(dst) of them, and returns the
	// extended slice. When dst has no spare capacity (nil, say), Read
	// returns up to DefaultReadBatch records in a newly grown slice. It returns no
	// record that could still be preceded by a later commit, so a reader
	// that resumes from the last position it saw never skips an event.
	Read(ctx context.Context, after event.Position, dst []event.Record) ([]event.Record, error)
	// Head returns the position of the newest committed record readable by
	// Read (0 for an empty log).
	Head(ctx context.Context) (event.Position, error)
	// Wait blocks until Head > after, ctx is done (ctx.Err()), or the log is
	// closed (ErrClosed).
	Wait(ctx context.Context, after event.Position) error
}

// Contiguous is an optional Log capability: a log that reports true promises
// positions 1, 2, 3... with no holes, so a reader that sees a hole has found a
// bug or corruption and must report it rather than jump it.
type Contiguous interface {
	Contiguous() bool
}

// HeldBack describes a log whose readable horizon is held below records
// that have already committed: on PostgreSQL, by the oldest transaction
// still open anywhere in the cluster (see the pgstore package doc).
type HeldBack struct {
	// Readable is the newest position a reader can see now.
	Readable event.Position
	// Head is the newest committed position.
	Head event.Position
	// PID, Database and Age describe the blocking transaction's backend
	// when the store can tell (zero values otherwise).
	PID      int
	Database string
	Age      time.Duration
	// Reason says in words what holds the log back.
	Reason string
}

func (h *HeldBack) String() string {
	if h.PID != 0 {
		return fmt.Sprintf("transaction pid %d in database %q open for %v", h.PID, h.Database, h.Age.Round(time.Second))
	}
	if h.Reason != "" {
		return h.Reason
	}
	return "an open transaction"
}

// HeldBackError reports that a log is held back. It matches ErrUnavailable:
// the condition is outside the data and ends by itself (or when the
// blocking transaction is ended).
type HeldBackError struct{ HeldBack }

func (e *HeldBackError) Error() string {
	return fmt.Sprintf("store: log held back by %s (readable up to %v, committed up to %v)", e.HeldBack.String(), e.Readable, e.Head)
}

// Is makes HeldBackError match ErrUnavailable.
func (e *HeldBackError) Is(target error) bool { return target == ErrUnavailable }

// HorizonReporter is an optional Log capability: a log that can report that
// committed records are not yet readable, and why.
type HorizonReporter interface {
	// HeldBack returns nil, nil when every committed record is readable.
	HeldBack(ctx context.Context) (*HeldBack, error)
}

// EventCounter is an optional Log capability for logs whose positions are
// not contiguous (such as PostgreSQL's): it counts committed records with
// after < position <= upTo, counting at most limit of them (a result equal to
// limit means "limit or more").
type EventCounter interface {
	CountEvents(ctx context.Context, after, upTo event.Position, limit uint64) (uint64, error)
}

// RecordError reports a committed record that a log cannot return, such as
// one whose payload type is not registered (event.ErrUnknownType). Read
// returns the records before it together with this error, so a reader can
// apply them and then deal with the record at Position instead of skipping
// it. It unwraps to the cause.
type RecordError struct {
	Position event.Position
	Type     string
	Err      error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("store: record at position %v (type %q): %v", e.Position, e.Type, e.Err)
}

// Unwrap returns the cause.
func (e *RecordError) Unwrap() error { return e.Err }
