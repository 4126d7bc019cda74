// Package pgstore is the PostgreSQL write store of cqrskit, built on pgx v5.
//
// A *Store is a store.Store, a store.Log, a projection.CheckpointStore and a
// projection.ParkStore.
// Update runs a command handler in one database transaction: rows of typed
// tables (store.NewTable works unchanged: the Tx implements store.RowTx and
// keeps rows as JSON in the rows table), the handler's own SQL (see SQL) and
// the events it records commit together or not at all. The events table is
// the transactional outbox: publishers and projectors read the committed log
// with Read and Wait, never a second copy written after the fact.
//
// # Gap-safe positions
//
// A reader that remembers the last position it saw and asks for
// "position > checkpoint" must never be handed a smaller position later. A
// sequence breaks that: transaction A takes position 10, B takes 11 and
// commits first, a reader sees 11, then A commits 10 and the reader never
// looks back. Filtering by transaction id repairs only half of it.
// PostgreSQL can tell which transactions are certainly finished: every id
// below pg_snapshot_xmin(pg_current_snapshot()) has committed or rolled back.
// But a transaction gets its id at its first write, which can be long before
// it draws from a sequence, so a finished transaction with a small id can
// hold a sequence value above that of a running transaction with a larger
// id, and "sequence order, finished transactions only" still skips events
// (TestSequenceWithXminFilterStillSkips shows it).
//
// So the position is a transaction id. Update appends all events of a unit
// of work with one INSERT that takes a fresh transaction id at that moment,
// and
//
//	position = that id << 16 | index of the event in the unit of work
//
// The id is that of a savepoint's subtransaction (read back as the xmin of a
// row the same statement updates) or, when the unit of work ran no
// statement before its commit, that of its own transaction, of which the
// INSERT is the first write; either way it is stored in the append_xid
// column. Read and Head only consider positions
// below pg_snapshot_xmin << 16, the horizon, checked in the same statement
// and so the same snapshot as the rows. A transaction still running either
// has an id at or above xmin, and its subtransactions have larger ids still,
// or has no id yet and gets a larger one when it appends; either way every
// position it can add is above the horizon. So whatever a reader has been
// given is final, and everything committed later sorts after it. A rolled
// back transaction simply never appears, and holds nothing up once it ends.
//
// Taking the id at the append, rather than the transaction's own id, keeps
// positions in the order of the appends: a unit of work that read anything
// another one committed (say version 1 of a stream, before appending version
// 2) appends after that commit and so gets the larger position, even if it
// started first (TestPositionsFollowAppends). Within a stream, positions
// follow versions.
//
// Consequences:
//
//   - Positions are neither contiguous nor small, so Store does not
//     implement store.Contiguous. Treat them as opaque, increasing tokens.
//   - A unit of work records at most MaxEventsPerUpdate events, and
//     positions need transaction ids below 2^47: a cluster that uses 10,000
//     ids per second (a unit of work with events uses one or two) gets there in
//     about 440 years.
//   - Readers lag behind the oldest running transaction that has a
//     transaction id, in any database of the cluster: a long-running write
//     transaction delays Read and Wait (they never skip). Keep write
//     transactions short, and watch for idle-in-transaction sessions.
//   - Update's position is readable once the horizon passes it; Wait(ctx,
//     pos-1) waits for that.
//   - Positions follow the cluster's transaction ids. pg_upgrade keeps
//     them; a logical dump restored into a fresh cluster does not, and needs
//     the new cluster's transaction ids advanced past the stored ones
//     (pg_resetwal --next-transaction-id) before new events are written.
//
// # Stream versions and conflicts
//
// Tx.ExpectVersion checks the stream's version at once and pins the stream:
// at commit its events are inserted at exactly the versions that follow. A
// concurrent writer that appended first has taken one of them, and the
// UNIQUE (stream, version) constraint rejects the insert (unique_violation),
// which Update reports as a *store.ConflictError; no version is ever decided
// by reading and then writing. A stream pinned by ExpectVersion that gets no
// events is re-read at commit instead. Events recorded without ExpectVersion
// go after whatever the stream holds at commit time; if a concurrent writer
// takes that version first, the append is retried (under the savepoint, or
// in a new transaction when the failed one held nothing else), with a short
// random wait once it has lost a few times, for as long as the context
// allows: such blind appends do not fail for losing races, however many
// writers share the stream. Rows are inserted sorted by stream, so two
// units of work appending to the same streams cannot deadlock on each
// other's index entries.
//
// Table rows are checked the same way, in single statements: PutIf is an
// UPDATE ... WHERE version = expected (or an INSERT ... ON CONFLICT DO NOTHING
// for version 0), so of two writers at one version the second waits for the
// first and then matches no row.
//
// # Round trips
//
// BEGIN is sent with a unit of work's first statement, and COMMIT with its
// append, as one pipeline: a unit of work that only records
// events costs one round trip to the server, however many events it
// records (they are inserted by one statement); one that reads a stream
// version or writes a row first costs two; each further statement of its
// own, one more. Only a lost race for a stream version adds round trips.
//
// The append statement is prepared once per connection, and its array
// parameters are encoded by pgstore itself, in PostgreSQL's binary format,
// because pgx's general-purpose encoding cost more client CPU than the
// rest of a 100-event unit of work. A pool whose ConnConfig has a Tracer
// gets the append through pgx.Batch instead, so the tracer sees it. Like
// pgx's statement cache, this needs a connection that keeps its prepared
// statements (not a transaction-mode pooler in front of PostgreSQL); a
// statement dropped behind the pool's back (DEALLOCATE ALL, DISCARD ALL)
// fails the unit of work that finds it gone and closes that connection.
//
// # Waiting
//
// The first Wait starts one LISTEN connection (taken out of the pool) and
// one goroutine per Store that re-reads the head on each notification, on
// each commit of this Store, and every poll interval (WithPollInterval); all
// waiters share the head it reads. Polling is needed because a notification
// does not mean that the horizon has passed the commit (an older transaction
// may still be open), and the horizon also rises when a transaction without
// events ends, which notifies nobody.
//
// Notifications are sent after the commit, not in it: a transaction that
// runs NOTIFY takes a cluster-wide lock at commit and holds it through its
// WAL flush, which serialises every notifying commit (pgbench with 8 clients:
// about 4,000 commits/s without NOTIFY, 800 with). Instead one goroutine per
// Store sends a pg_notify after this Store's commits, merging the commits
// that happen while one is in flight, in a transaction committed
// asynchronously because a wake-up call needs no durability. A process that
// dies between a commit and its notification costs other processes' waiters
// at most one poll interval. WithNotify(false) turns notifications off.
//
// # Schema
//
// New creates the schema (WithSchema, default "cqrskit") and applies
// versioned migrations recorded in schema_migrations, inside a transaction
// holding pg_advisory_xact_lock, so several processes may start at once.
//
// # Read models
//
// NewProjector builds a projector whose read model is in the same database:
// it applies each record and advances its checkpoint in one transaction, so
// the effect of every event is applied exactly once, also after a crash.
//
// # Leases
//
// The Store is a projection.Leaser and projection.FencedCheckpoints, so
// runners in several processes can share projectors through it
// (projection.WithLeases(st, owner, ttl)): one row per lease name in the
// leases table, never deleted, so fencing tokens only grow; Acquire, Renew,
// Release, Holder and List are one statement each and use only the
// server's clock, so skewed machine clocks do not matter. SaveFenced and
// NewProjector's transactions share-lock the lease row and check the
// token before writing, so a former owner's write is refused with a
// *projection.FencedError and a new owner's Acquire waits for a write in
// flight. An owner frozen inside such a transaction therefore holds up
// the takeover until its connection ends: set the server's
// idle_in_transaction_session_timeout below the lease TTL.
//
// # Dead letters
//
// As a projection.ParkStore, the Store keeps the events a runner parked
// (policy projection.Park) in the dead_letters table, one row per projector
// name and position with the error text, the attempts and the time
// (microsecond precision); the record itself stays in the log. A runner
// whose CheckpointStore is the Store (projection.WithCheckpoints) therefore
// lists its parked events again after a restart, and Runner.Replay deletes
// the row once the event applies.
//
// # Faults
//
// Driver errors that mean the server cannot be used now (connection refused
// or reset, admin or crash shutdown, SQLSTATE class 08, too many
// connections, network timeouts, a closed pool) match store.ErrUnavailable
// next to the driver's error, so projection runners retry them instead of
// stopping or parking. The Store is a store.HorizonReporter: HeldBack names
// the oldest open transaction of the cluster (pid, database, age) when it
// holds committed records below the readable horizon, and a
// store.EventCounter, so Status reports how many events, not positions, a
// projector is behind. Read returns the records before one it cannot
// decode together with a *store.RecordError. Checkpoint saves never move a
// checkpoint backwards.
//
// # Concurrency
//
// A Store is safe for concurrent use. A Tx belongs to the goroutine running
// the Update that created it and must not be used after Update returns.
// Update holds a pool connection for its duration; Read, Head and the
// checkpoint methods borrow one per call; Wait holds none while it waits.
// A Store runs up to three goroutines, started on first use: the notifier
// (first commit with events), the listener and the watcher (first Wait); the
// listener keeps one connection out of the pool. Close waits for calls in
// progress and stops the goroutines; the pool remains the caller's to close,
// after the Store.
//
// # Errors
//
// Methods return store.ErrClosed after Close, errors matching ctx.Err() when
// their context ends, and *store.ConflictError / store.ErrConflict for
// failed version checks (serialization failures and deadlocks also match
// store.ErrConflict, since re-running may succeed). Driver errors are wrapped
// with %w, so errors.As finds *pgconn.PgError next to the sentinel.
// PostgreSQL data exceptions (SQLSTATE class 22: a NUL byte in text, invalid
// UTF-8, a value out of range), in row writes and reads, event appends and
// stream lookups, become a *store.InvalidError (store.ErrInvalid) wrapping
// the driver error: permanent, so neither ErrConflict nor ErrUnavailable.
// store.Table refuses such text, and non-finite floats, before they reach
// the database, exactly as store.Memory does, so both stores accept the same
// rows. Table.Insert of an existing key returns *store.AlreadyExistsError.
// Each method documents what it returns.
//
// # Rows and keys
//
// Rows are stored as JSON (jsonb) under their table name and encoded key:
// string keys as they are (rows written by earlier versions stay readable),
// other keys as their JSON encoding, e.g. {"ProductID":"p1","Seq":2}. Rows
// with non-string keys written before this encoding (fmt.Sprint, e.g.
// "{p1 2}") are not found under the new one and must be migrated.
package pgstore
