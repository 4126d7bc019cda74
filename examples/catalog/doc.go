// Package catalog is the product-catalog example of cqrskit, importable so
// that tests, benchmarks and demos reuse it.
//
// The write model (Domain) is normalized: sellers, products, reviews,
// shipping options and price history are separate typed tables, and the
// command handlers validate against them (the product exists, the seller
// owns it) before recording events. The read side knows nothing of those
// tables: Views folds the events into a ProductView per product that
// answers, in one lookup, everything the product page's 5-table JOIN
// returned (average rating and count, the five newest reviews, seller name
// and rating, shipping methods, prices 30 and 90 days ago, price dropped),
// plus top-rated, in-stock and products-by-seller indexes. Trending is a
// read model added later without touching a command, a table or an event.
//
// Open wires it all on any store.Store and store.Log: a store.Memory, or
// pgstore for PostgreSQL.
//
// # Concurrency
//
// App, Views and Trending are safe for concurrent use. Queries never wait on
// the projection: views are immutable values read from lock-free maps, and
// a seller rename reaches every product view of the seller through the
// projector rather than a write-side fan-out.
//
// # Stock and optimistic concurrency
//
// ReserveStock and Restock change stock relatively inside the unit of
// work, so concurrent reservations never lose an update and stock never
// goes below zero. Absolute updates (UpdatePrice, UpdateStock,
// UpdateDetails, SetShipping) may carry the ExpectedVersion a client read
// from ProductView.Version; a command that would change nothing records no
// event.
//
// # Errors
//
// Dispatch returns the command package's typed errors: ErrValidation for
// bad fields (every invalid field is listed; text must be valid UTF-8, free
// of control characters and within the Max limits, so every store accepts
// the same input), ErrNotFound for a missing seller or product,
// ErrForbidden when a seller acts on another seller's product,
// ErrAlreadyExists (*store.AlreadyExistsError) when an ID is already taken,
// ErrRejected (*command.RejectedError with CodeInsufficientStock or
// CodeStockLimit) when a stock rule is broken, and ErrConflict
// (*command.StaleError) when ExpectedVersion is outdated. Only a transient
// conflict is retried.
package catalog
