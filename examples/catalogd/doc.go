// Command catalogd serves the product catalog (examples/catalog) over HTTP,
// in one process on the in-memory store or as a multi-process topology on
// PostgreSQL, NATS JetStream and Redis, chosen by flags; see package httpapi
// for the API.
//
//	catalogd                                            # everything in one process, in memory, on :8080
//	catalogd -postgres URL                              # write side and log in PostgreSQL, views in memory
//	catalogd -postgres URL -role writer                 # commands only (queries answer 421)
//	catalogd -postgres URL -role reader                 # follows the PostgreSQL log: in-memory views, queries only
//	catalogd -postgres URL -nats URL -role relay        # publishes the PostgreSQL log to JetStream (-stream)
//	catalogd -nats URL -role reader                     # follows the stream: in-memory views, queries only
//	catalogd -postgres URL -redis ADDR -role projector  # keeps the views in Redis (or -nats URL instead of -postgres)
//	catalogd -redis ADDR -role reader                   # stateless: serves the views in Redis
//
// The position token a writer returns is the PostgreSQL log's position. A
// reader on PostgreSQL or on the stream (the natsbus.Follower keeps the log's
// positions) waits until its own views have applied it; a Redis reader waits
// until the projector's checkpoint in Redis, committed with the views, has
// reached it. Either wait is bounded by -consistency-timeout, then 503 with
// Retry-After.
//
// In-memory readers rebuild their views from the log (or the stream) when
// they start. Projectors keep their checkpoint in Redis with the views
// (exactly once) and share one lease there: run two or more, one applies
// and the others stand by; /v1/status shows the owner. Relays are fenced by
// the stream itself, so a second relay is a safe hot standby. Redis keeps no
// trending window: a Redis reader never sets the trending badge.
//
// Invalid combinations of role and adapters (a relay without -postgres and
// -nats, a projector without -redis, a reader given two sources, ...) fail
// at start-up with a *ConfigError (matching ErrConfig, exit status 2).
//
// The process stops gracefully on SIGINT or SIGTERM: it stops accepting
// connections, lets requests in flight finish (up to -shutdown-timeout),
// then stops the projections (releasing a projector's lease) and closes its
// connections.
//
// A process holding a large, stable view heap (100K products are about
// 220 MB) spends its read latency tail in garbage collection: every cycle
// marks the whole heap. -gc-percent sets the collector's target as GOGC
// does (400: a cycle after the heap grows by four times the live data, so
// a quarter as many cycles) and -memory-limit-mib sets a soft limit as
// GOMEMLIMIT does, so the heap cannot outgrow the machine; load.sh and
// BENCHMARKS.md show the effect on read and write p99.
//
// -naive-join URL (role all) is the baseline the service is compared
// with: GET /v1/products/{id} runs the seed's 5-table JOIN (package bench's
// corrected form) on PostgreSQL per request, on tables loaded from the log
// after -seed and written through by every command, exactly once;
// "load.sh single naive-join" measures both in one run.
package main
