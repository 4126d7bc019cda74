// Package command registers typed command handlers and dispatches commands to
// them inside a unit of work of the write store.
//
// A command is any Go value. Register binds a handler to its type with
// generics, so handlers receive the concrete type and user code never
// type-asserts. Dispatch runs, in order:
//
//  1. the middleware chain (Retry, Authorize, Logging, Observe, Recover, or
//     your own);
//  2. stateless validation, if the command implements Validator;
//  3. the handler, inside store.Store.Update: it validates against current
//     state (the product exists, the seller owns it), writes tables and
//     records events, all of which commit together or not at all;
//  4. post-commit work (Syncers, such as the projection runner that brings
//     inline read models up to date), so a read after Dispatch returns sees
//     the write.
//
// Dispatch returns a Result whose Position is the read-your-writes token.
//
// # Concurrency
//
// A Bus is safe for concurrent use. Handlers run concurrently as far as the
// store allows (store.Memory runs one unit of work at a time). A handler must
// not dispatch another command on the same store from inside its unit of
// work: on store.Memory that waits for itself, and on any store it would
// split one decision over two transactions. Record an event instead and let
// an async projector (projection.AsAsync: a process manager) dispatch the
// follow-up; an inline one must not, because it runs inside the first
// dispatch's post-commit work.
//
// # Errors
//
// Every rejection matches a sentinel with errors.Is and carries detail for
// errors.As: ErrNoHandler (*NoHandlerError), ErrValidation (*ValidationError
// with per-field errors), ErrNotFound (*NotFoundError, or the store's
// *store.NotFoundError), ErrForbidden (*ForbiddenError), ErrConflict
// (*store.ConflictError). A rejected command leaves no state change and no
// event. The one error after which the command did commit is ErrAfterCommit
// (*AfterCommitError): post-commit work failed; the Result is valid and the
// failed projector keeps the event for when it resumes.
package command
