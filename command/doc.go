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
// A command is dispatched as a value or as a pointer to it (the habit of
// Watermill users): a pointer reaches the handler registered for the value
// type, and middleware sees the value.
//
// # Errors
//
// Every rejection matches a sentinel with errors.Is and carries detail for
// errors.As. Pick the one that tells the caller what to do next:
//
//   - ErrValidation (*ValidationError with per-field errors, built with
//     Invalid and Add): the command itself is malformed, whatever the state;
//     the caller must fix its input.
//   - store.ErrNotFound (*store.NotFoundError, made with store.NotFound): an
//     entity the command refers to does not exist.
//   - ErrForbidden (*ForbiddenError): the caller may not do this.
//   - store.ErrAlreadyExists (*store.AlreadyExistsError): the command would
//     create something that exists already. Permanent: Retry never re-runs
//     it.
//   - ErrRejected (*RejectedError, built with Reject): the command is well
//     formed and allowed, but the current state breaks a business rule ("no
//     seats left", "copy already on loan", "insufficient stock"). Its Code is
//     stable and machine-readable (branch on it, map it to an HTTP 409 or
//     422); its Message is for people. Permanent for this state: Retry never
//     re-runs it.
//   - store.ErrConflict: a concurrent change won. A *store.ConflictError
//     from an optimistic write is transient: Retry re-runs the handler,
//     which re-reads. A *StaleError (from ExpectVersion) means the command
//     carried the version its client last saw and the entity has moved on:
//     the client must re-read, so Retry does not re-run it.
//   - event.ErrPanic (*event.PanicError), from Recover: the handler
//     panicked; the unit of work was rolled back.
//
// A command type with no handler is a wiring mistake, reported as a
// *NoHandlerError (with a Hint when the bus can tell what is wrong) that
// matches no sentinel.
//
// A rejected command leaves no state change and no event. The one error
// after which the command did commit is ErrAfterCommit (*AfterCommitError):
// post-commit work failed; the Result is valid and the failed projector keeps
// the event for when it resumes.
//
// A handler rejects on a business rule like this:
//
//	if p.Stock < c.Quantity {
//		return command.Reject("insufficient_stock",
//			fmt.Sprintf("only %d of %s in stock, %d requested", p.Stock, p.ID, c.Quantity))
//	}
//
// and a caller tells the cases apart with errors.Is(err, command.ErrRejected)
// and errors.As(err, &rejected) for rejected.Code.
package command
