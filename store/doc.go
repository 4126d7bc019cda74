// Package store is the write side of cqrskit: units of work that commit
// state changes and events together, typed normalized tables with versioned
// rows, and the ordered event log with global positions.
//
// A command handler runs inside Store.Update. It reads and writes tables
// through the Tx it is given (Table.Get, Put, PutIf, Insert, Delete) and
// records events with Tx.Record. When the handler returns nil, the table
// writes and the events commit atomically; when it returns an error or
// panics, none of it happened. This is the transactional outbox: the log is
// written in the same unit of work as the state, and everything downstream
// (projections, the bus, relays to brokers) reads the committed log, so a
// state change without its event, or the reverse, cannot happen.
//
// Memory is the in-memory implementation, a first-class default rather than a
// test fake. Durable stores (store/pgstore) implement the same Store and Log
// interfaces; their Tx implements RowTx so that Table works unchanged, and
// domain code does not change when the backend does.
//
// # What a table can hold
//
// The same program must see the same rows on every store. Table therefore
// refuses, with a *InvalidError (ErrInvalid), row and key types that JSON
// cannot round-trip faithfully (unexported or json:"-" fields, interfaces,
// funcs, chans, complex numbers), non-finite floats, and text that
// PostgreSQL cannot hold (a NUL byte, invalid UTF-8) in keys, row strings and
// stream names, on Memory as on durable stores. Non-string keys are encoded
// as JSON, so composite keys never collide. Rows holding pointers, slices or
// maps are copied deeply on Memory (through a Clone method when V has one),
// so rolling back undoes in-place edits too. See Table.
//
// Event payloads are not inspected by Memory: a durable store refuses a
// payload it cannot hold (a NUL byte in text) with a *InvalidError, while
// encoding/json turns invalid UTF-8 in a payload into U+FFFD. Validate text
// in commands, before it reaches an event.
//
// # Optimistic concurrency
//
// Rows and streams are versioned. Table.PutIf and Tx.ExpectVersion fail with
// a *ConflictError when the version moved, which turns a lost update into an
// error that command.Retry can act on by re-running the handler.
//
// # Concurrency
//
// All types are safe for concurrent use, except Tx, which belongs to the
// goroutine running the unit of work and must not outlive it. Memory
// serialises units of work (one writer at a time, like SQLite), so commits are
// applied in position order with no holes; Log readers never take the writer
// lock and never block it.
//
// # Errors
//
// Update returns the handler's error unchanged, *ConflictError (ErrConflict),
// *InvalidError (ErrInvalid) for a nil event or an invalid stream name,
// ErrClosed after Close, or the context's error if it is done before the
// handler runs. Table methods return *NotFoundError (ErrNotFound),
// *ConflictError (ErrConflict, from PutIf: a version check that a retry
// may pass), *AlreadyExistsError (ErrAlreadyExists, from Insert: permanent,
// never retried) and *InvalidError (ErrInvalid: permanent). Log methods
// return ErrClosed after Close and the context's error. Match them with
// errors.Is and errors.As. Using a Tx after its Update returned is a bug and
// panics (Record) or fails with a plain error, not a sentinel. A command
// handler reports a missing entity with NotFound("product", id), the same
// *NotFoundError the tables return.
package store
