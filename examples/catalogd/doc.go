// Command catalogd serves the product catalog (examples/catalog) over HTTP,
// in one process on the in-memory store or as a writer and readers on
// PostgreSQL, chosen by flags; see package httpapi for the API.
//
//	catalogd                                  # everything in one process, in memory, on :8080
//	catalogd -postgres URL                    # write side and log in PostgreSQL, views in memory
//	catalogd -postgres URL -role writer       # commands only (queries answer 421)
//	catalogd -postgres URL -role reader       # follows the log: in-memory views, queries only
//
// A reader runs its own projection runner over the PostgreSQL log and keeps
// its views in memory; it rebuilds them from the log when it starts. The
// position token a writer returns is the log's position, so a query sent to
// any reader with that token (Cqrs-Position header) waits until that
// reader has applied it.
//
// Not built yet: -nats (a relay into JetStream and readers fed from it,
// role relay) needs the event/natsbus adapter, and -redis (views in Redis,
// role projector) needs readmodel/redisstore. Those flags and roles fail at
// start-up with a *NotBuiltError (matching ErrNotBuilt) instead of running
// something else; each is one function to add in topology.go when the
// adapter exists.
//
// The process stops gracefully on SIGINT or SIGTERM: it stops accepting
// connections, lets requests in flight finish (up to -shutdown-timeout),
// then stops the projections and closes the store.
package main
