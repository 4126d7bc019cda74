// Package natsbus fans the committed event log out to read replicas through
// NATS JetStream: a Relay publishes a store.Log to a stream, and a Follower
// is a store.Log over that stream, so a projection.Runner on a read node
// runs unchanged, with its checkpoints and read-your-writes tokens.
//
// It is its own module so that importing the core never pulls in the NATS
// client.
//
//	// writer
//	relay := natsbus.NewRelay(js, pgLog, reg, natsbus.WithStream("CATALOG"))
//	go relay.Run(ctx)
//
//	// each reader
//	f := natsbus.NewFollower(js, reg, natsbus.WithStream("CATALOG"))
//	runner := projection.NewRunner(f, projection.WithCheckpoints(cps))
//	runner.Add(views, projection.AsAsync())
//	runner.Start(ctx)
//	runner.WaitFor(ctx, "", token) // token from Dispatch on the writer
//
// # Relay
//
// The Relay reads the source log in position order and publishes one
// message per record to <prefix>.<category>.<type> (see Subject; ByCategory
// and ByType give filters for other consumers). The message ID
// (Nats-Msg-Id) is the record's ID; headers carry the position, the
// position of the record before it in the source log, the stream, stream
// version, type, commit time and metadata (correlation, causation and
// user IDs; the W3C traceparent under its standard header name);
// WithHeaders adds headers of your own. Payloads are encoded by the event.Registry.
//
// On start, and after any failure, the relay reads the stream's last
// message and continues after the position it holds, so a restart (or a
// SIGKILL mid-batch) neither loses nor repeats a record. Every publish
// expects the stream's last sequence to be the one the relay last saw
// (and, after the first, the last message ID to be the previous record's),
// so a second relay on the same stream, or any other publisher, makes the
// publish fail instead of interleaving: the relay then re-reads the tail
// and continues. Because the relay knows the sequence each of its messages
// must get, it can pipeline: up to WithWindow publishes are in flight
// (WithSync is the one-at-a-time baseline). Two relays can therefore run
// for availability; they never duplicate, they only waste work while both
// are active.
//
// # Follower
//
// A Follower's positions are the source log's. Read finds where to start
// by binary search over stream sequences (direct gets, about log2(n)
// requests), then reads through an ephemeral pull consumer that it keeps
// for the next Read from the same position. Wait is woken by an ordered
// consumer on the stream's new messages, not by polling. Each message's
// predecessor header must equal the record delivered before it, which
// checks order and completeness on any source log, contiguous or not.
//
// # Retention
//
// The stream is a cache of the log, not the log: its limits (max age,
// bytes, messages) may drop records that a reader still needs. A reader
// whose next record is gone gets a *RetentionError (ErrRetention) instead of
// silently skipping: rebuild its read models from the source log (a
// projection.Runner.Rebuild on a node that can read the source, or a
// snapshot) and follow the stream from there. Size the stream's retention
// for the longest outage a reader must survive.
//
// # Concurrency
//
// A Relay's Run must not be called concurrently; Status may be called at
// any time. A Follower is safe for concurrent use by many runners and
// projectors. NewFollower starts two goroutines that Close stops.
//
// # Errors
//
//   - *UnavailableError (store.ErrUnavailable): NATS is down, restarting,
//     timing out, or the stream does not exist yet. A projection.Runner
//     retries such failures with backoff and shows them in Status; the
//     Relay retries them itself and shows them in RelayStatus.Err.
//   - *RetentionError (ErrRetention): see above.
//   - *GapError (ErrGap): the stream skips or repeats source records.
//   - *MalformedError (ErrMalformed): a message that the Relay did not
//     write. Without a position it stops Read (SkipMalformed skips it);
//     with one, it comes inside a *store.RecordError so that the runner's
//     Stop or Park policy applies at that position.
//   - store.ErrClosed: a Follower used after Close.
package natsbus
