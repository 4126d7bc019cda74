// Package httpapi serves the product catalog (examples/catalog) over HTTP
// with JSON bodies: every catalog command as a POST or PUT, the product
// view, top-rated, in-stock (cursor paging) and products-by-seller queries,
// and /healthz, /readyz and /v1/status for operators.
//
// The handler is the same in every topology: New takes a write side (a
// Dispatcher) and a read side (Views plus the Progress of the projections
// that feed them), either of which may be missing. A process without a
// write side answers writes with 421 Misdirected Request, one without views
// answers queries the same way, so a load balancer or a client that sent a
// request to the wrong role learns it at once instead of reading stale or
// empty data.
//
// # Read-your-writes
//
// Every successful write returns the command's position token in the
// Cqrs-Position response header (and in the body). A query that sends the
// token back in a Cqrs-Position request header is answered only once the
// views of the process answering it have applied that position; if they do
// not get there within Options.ConsistencyTimeout (2 s by default) the
// answer is 503 with Retry-After, never an older view. Product responses
// carry the product's version as a strong ETag ("7"); a write with
// If-Match: "7" changes the product only if it is still at version 7 and
// fails with 412 Precondition Failed otherwise. If-None-Match on a product
// GET gives 304 when the version is unchanged.
//
// # Errors
//
// Every error is an RFC 9457 problem document (application/problem+json)
// whose type is one of the Type constants, mapped from the typed errors of
// the command, store and projection packages:
//
//	command.ValidationError, store.InvalidError  422, with a per-field "errors" list
//	store.ErrNotFound                            404
//	command.ErrForbidden                         403
//	command.StaleError (If-Match outdated)       412
//	store.ErrAlreadyExists, command.ErrRejected
//	(with "code"), store.ErrConflict             409
//	projection.ErrNotReached, read-your-writes
//	timeout, store.ErrUnavailable, not ready     503, with Retry-After
//
// A command that committed although this process's inline views failed to
// follow it (command.ErrAfterCommit) is a success: the write stands, the
// answer carries its token, and a read with the token waits for the views
// or gets 503. Bad requests are refused before anything is dispatched, so nothing is
// written: malformed JSON, a wrong type, an unknown field, trailing data or
// invalid UTF-8 give 400, a body over Options.MaxBodyBytes 413, a content
// type other than JSON 415. Internal error text never reaches a client: a
// 500 carries only an instance ID, and the error is logged with slog under
// that ID.
//
// # Concurrency
//
// The handler is safe for concurrent use; it keeps no per-request state
// beyond the request.
package httpapi
