package command

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Sentinel errors: the rejections a caller branches on. Each typed error
// below matches one of them with errors.Is and carries the detail
// (errors.As). Rows that do not exist, that exist already, or that a
// concurrent change won are reported with the store's sentinels
// (store.ErrNotFound, store.ErrAlreadyExists, store.ErrConflict): command
// has no second name for them.
var (
	// ErrValidation: the command is invalid (stateless or stateful check).
	ErrValidation = errors.New("command: validation failed")
	// ErrForbidden: the caller may not perform the command.
	ErrForbidden = errors.New("command: forbidden")
	// ErrRejected: the command broke a business rule ("no seats left");
	// see RejectedError for the machine-readable code.
	ErrRejected = errors.New("command: rejected")
	// ErrAfterCommit: the command committed but something that runs after
	// the commit (an inline projection) failed. Such an error must not be
	// retried: see AfterCommitError.
	ErrAfterCommit = errors.New("command: committed, but post-commit work failed")
)

// NoHandlerError reports a dispatch of a command type that has no handler: a
// wiring mistake, fixed in code rather than handled at run time, so it
// matches no sentinel (use errors.As).
type NoHandlerError struct {
	// Type is the dispatched command's Go type.
	Type string
	// Hint says how to fix the wiring, when the bus can tell (for example,
	// the handler is registered for the pointer type); often empty.
	Hint string
}

func (e *NoHandlerError) Error() string {
	if e.Hint != "" {
		return "command: no handler for " + e.Type + " (" + e.Hint + ")"
	}
	return "command: no handler for " + e.Type
}

// FieldError is one invalid field.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists the invalid fields of a command. It matches
// ErrValidation.
type ValidationError struct {
	Fields []FieldError
}

// Invalid starts a ValidationError with one field error.
func Invalid(field, message string) *ValidationError {
	return &ValidationError{Fields: []FieldError{{Field: field, Message: message}}}
}

// Add appends a field error; it returns v for chaining.
func (v *ValidationError) Add(field, message string) *ValidationError {
	v.Fields = append(v.Fields, FieldError{Field: field, Message: message})
	return v
}

// Err returns v as an error, or nil when it holds no field errors, so
// Validate methods can collect errors and end with `return v.Err()`.
func (v *ValidationError) Err() error {
	if v == nil || len(v.Fields) == 0 {
		return nil
	}
	return v
}

// Field returns the message for field and whether it is present.
func (v *ValidationError) Field(field string) (string, bool) {
	for _, f := range v.Fields {
		if f.Field == field {
			return f.Message, true
		}
	}
	return "", false
}

func (v *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("command: invalid")
	for i, f := range v.Fields {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " %s: %s", f.Field, f.Message)
	}
	return b.String()
}

// Is makes ValidationError match ErrValidation.
func (v *ValidationError) Is(target error) bool { return target == ErrValidation }

// ForbiddenError says why the caller may not perform the command. It matches
// ErrForbidden.
type ForbiddenError struct{ Reason string }

// Forbidden returns a *ForbiddenError.
func Forbidden(reason string) *ForbiddenError { return &ForbiddenError{Reason: reason} }

func (e *ForbiddenError) Error() string { return "command: forbidden: " + e.Reason }

// Is makes ForbiddenError match ErrForbidden.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// RejectedError reports a command refused by a domain rule. Code is stable
// and machine-readable (clients branch on it); Message is for people. It
// matches ErrRejected.
type RejectedError struct {
	Code    string
	Message string
}

// Reject returns a *RejectedError with the given code and message.
func Reject(code, message string) *RejectedError {
	return &RejectedError{Code: code, Message: message}
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("command: rejected (%s): %s", e.Code, e.Message)
}

// Is makes RejectedError match ErrRejected.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// StaleError reports that a command carried the version it expected an
// entity's stream to be at (the version a client read, such as an HTTP
// If-Match) and the stream has moved on since. It matches store.ErrConflict, so a
// caller handles it like any conflict (re-read, then decide), but Retry
// never re-runs it: re-running cannot make the client's version current.
// ExpectVersion returns it.
type StaleError struct {
	// Stream is the stream checked.
	Stream string
	// Expected is the version the command carried.
	Expected uint64
	// Actual is the stream's version found.
	Actual uint64
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("command: stale version: %s is at version %d, the command expected %d", e.Stream, e.Actual, e.Expected)
}

// Is makes StaleError match store.ErrConflict.
func (e *StaleError) Is(target error) bool { return target == store.ErrConflict }

// ExpectVersion checks, inside a handler, that stream is at the version a
// command carried (tx.ExpectVersion, which stores re-check at commit) and
// reports a mismatch as a *StaleError. Other errors are returned unchanged.
func ExpectVersion(tx store.Tx, stream string, version uint64) error {
	err := tx.ExpectVersion(stream, version)
	if err == nil {
		return nil
	}
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		return &StaleError{Stream: stream, Expected: version, Actual: ce.Actual}
	}
	return err
}

// AfterCommitError is returned when the command's unit of work committed at
// Position but post-commit work (inline projection) failed. The write stands;
// the failed projector keeps the event and can resume from its checkpoint.
// It matches ErrAfterCommit and unwraps to the cause.
type AfterCommitError struct {
	Position event.Position
	Err      error
}

func (e *AfterCommitError) Error() string {
	return fmt.Sprintf("command: committed at position %v, but post-commit work failed: %v", e.Position, e.Err)
}

// Is makes AfterCommitError match ErrAfterCommit.
func (e *AfterCommitError) Is(target error) bool { return target == ErrAfterCommit }

// Unwrap returns the cause.
func (e *AfterCommitError) Unwrap() error { return e.Err }
