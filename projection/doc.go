// Package projection turns the committed event log into read models.
//
// A [Projector] is a named [event.Handler] that folds records into a view
// shaped for one query. A [Runner] feeds projectors from a [store.Log] in
// position order, remembers how far each one got in a [CheckpointStore], and
// reports their health through [Runner.Status].
//
//	r := projection.NewRunner(st, projection.WithCheckpoints(cps))
//	r.Add(productView)                          // inline
//	r.Add(search, projection.AsAsync())         // async
//	if err := r.Start(ctx); err != nil { ... }
//	defer r.Close()
//	bus := command.New(st, command.WithSyncer(r))
//
// # Inline and async
//
// An inline projector is brought up to a command's position inside
// command.Bus.Dispatch, after the commit, through [Runner.Sync]: a read right
// after Dispatch returns sees the write, at the price of the projector's work
// on the command's latency. Use it for cheap views that must be fresh. When
// Sync gives up (the dispatch's context ends while another delivery holds
// the projector, or the log fails), the command is still committed
// (command.ErrAfterCommit) and a background goroutine applies it, so the
// view does not wait for the next dispatch to catch up. An
// inline projector must not dispatch commands: the nested dispatch would
// wait for the delivery it is part of. Process managers that react with
// commands belong in async projectors.
//
// An async projector follows the log on its own goroutine: it catches up from
// its checkpoint, then sleeps in [store.Log.Wait] until a commit wakes it (no
// polling). It costs the command nothing and is eventually consistent; the
// read-your-writes token below closes the gap where a caller needs it.
//
// # Read-your-writes tokens
//
// Every dispatch returns the log position of its last event (command.Result
// Position). Its String form can travel to a client and back
// (event.ParsePosition). A query that must include that write calls
// [Runner.WaitFor] with the projector's name (or "" for all projectors) and
// the position; it returns as soon as the projector has applied it, or a
// *[NotReachedError] when the context ends first.
//
// # Checkpoints and at-least-once delivery
//
// After each batch of records the runner saves the projector's [Checkpoint]:
// the position of the last record applied, and the projector's logic version
// ([WithVersion]). At
// Start a projector resumes after its checkpoint; records at or below it are
// never handed to it again, and [Runner.Close] finishes the record in hand
// and saves the checkpoint, so a stopped and restarted runner builds the same
// view as an uninterrupted one. After a crash, records applied since the last
// save are delivered again: delivery is at-least-once, so a projector whose
// view outlives the process should be idempotent (deduplicate by record
// Position or ID), or implement [SelfCheckpointer] to store the checkpoint in
// the same transaction as the view and get exactly-once effects.
//
// A log that reports [store.Contiguous] promises positions without holes. If
// such a log skips a position, the projector stops with a *[StoppedError]
// wrapping a *[GapError] instead of jumping the hole.
//
// # Failures
//
// A projector that returns an error, or panics (a *[event.PanicError], [event.ErrPanic]),
// is retried on the same record with backoff ([WithRetry], default three
// attempts, [DefaultBackoff]). When the attempts are used up its policy
// applies, and the record is never skipped silently:
//
//   - [Stop] (the default) halts that projector at the record. Status
//     reports State Stopped and a *[StoppedError] carrying the position;
//     the checkpoint stays at the record before it. Other projectors go on.
//     After fixing the fault, [Runner.Resume] retries the record.
//   - [Park] puts the record on the projector's dead-letter list (a warning
//     is logged) and goes on with the next one. [Runner.Parked] lists the
//     list; [Runner.Replay] applies one again after a fix and removes it.
//     When the CheckpointStore implements [ParkStore] (MemoryCheckpoints
//     does), each dead letter is stored there before the checkpoint moves
//     past it and reloaded at Start, so a restart does not forget it; if it
//     cannot be stored, the projector stops at the record instead. A
//     projector that keeps its own checkpoint ([SelfCheckpointer]) must
//     implement [Replayer] to replay; otherwise Replay fails and the
//     record stays parked.
//
// A record the log cannot return (a *store.RecordError, such as a payload
// type the reader's registry does not know during a rolling deploy) is a
// failure of that record: the records before it are applied and
// checkpointed, then the policy applies at it.
//
// Failures of the infrastructure are different: an error matching
// store.ErrUnavailable (a database that is down or restarting), or one the
// projector's [WithClassifier] function calls infrastructure, is retried
// for as long as it lasts with capped backoff ([InfraBackoff]: 10ms up to
// 2s), without counting as an attempt and never triggering the policy.
// Meanwhile Status reports State [Unavailable] with the cause in Err, and
// delivery resumes by itself. Errors of the log itself (reading it, waiting
// on it) are treated the same way by async projectors.
//
// Checkpoints never move backwards: [CheckpointStore.Save] refuses a lower
// position with a *store.ConflictError. Until leases exist, an async
// projector name must run in one process; a second runner of the same name
// that finds the checkpoint ahead of it stops with that conflict in Status.
//
// # Rebuild
//
// A projector that implements [Rebuilder] can be rebuilt without downtime:
// [Runner.Rebuild] replays the whole log into a fresh shadow read model while
// queries keep reading the live one, pauses live delivery only to catch the
// shadow up to the head, then swaps it in atomically. [Rebuilder.Shadow]
// returns the shadow as a [Shadow] value: its Handler, an optional Flush and
// the Swap. [View] does all of it for a read model behind one pointer:
//
//	prices := projection.NewView("prices", newBoard, func(r *event.Router, b *Board) {
//		event.On(r, b.priceChanged)
//	})
//	runner.Add(prices, projection.WithVersion(2))
//	...
//	prices.Load().Lookup("p-1")
//
// Added with [WithVersion], a projector is rebuilt automatically at Start
// when the version differs from the one saved in its checkpoint; Add
// refuses WithVersion for a projector that is not a Rebuilder.
//
// # Batches
//
// A projector that implements [BatchHandler] is handed the records the
// runner has in hand as one slice (a catch-up or a rebuild reads
// [WithBatchSize] records at a time; a Sync after several commits has
// several) instead of one [event.Handler.Handle] call per record, so it
// can apply them under one lock, or to a private copy published once. A
// single record still goes to Handle. Nothing else changes: records come
// in order, the checkpoint and WaitFor move once per batch and never past
// a record that is not applied, and HandleBatch reports how many leading
// records it applied. When it fails, the runner delivers the record it
// failed on to Handle on its own, with the usual retries and policy, then
// hands over the rest; a batch therefore never skips a record, and
// per-event projectors need no change. A [Shadow]'s Handler may implement
// it too, for rebuilds.
//
// # Several processes: leases, fencing, partitions
//
// When several processes run the same service against a shared read model,
// give their runners a [Leaser] ([WithLeases]): each async projector then
// has one owner at a time, the runner holding its [Lease]; the others
// report State [Standby] with the holder in Status.Owner and its fencing
// token in Status.Epoch, and take over when the lease lapses (the owner
// died) or is released (Close). Every checkpoint the owner saves goes
// through [FencedCheckpoints.SaveFenced], and its handlers' context carries
// the lease ([FenceFrom]) so a self-checkpointing view can condition its
// writes on it: an owner paused past its lease gets [ErrFenced] when it
// wakes, drops the batch in hand and stands by. [WithPartitions] splits a
// projector by stream hash ([PartitionOf]) into partitions with their own
// checkpoint and lease, which the runners share out fairly among the live
// ones. [Local] keeps a projector in every process. [MemoryLeases] is the
// in-process Leaser; package leasetest is the conformance suite for others.
//
// # Status and logging
//
// [Runner.Status] reports each projector's [State], checkpoint, the newest
// committed position, how many events and how much commit time it is
// behind, its error and its parked count. On a log whose readable horizon
// is held below committed records (store.HorizonReporter, e.g. an open
// transaction on PostgreSQL), Status.HeldBack names the cause, WaitFor's
// *NotReachedError carries it as a *store.HeldBackError, and Sync returns
// it early instead of waiting for its deadline. With [WithLogger] the runner logs stops and parks (at error
// and warning level) and rebuilds (info); nothing is logged per event.
//
// # Concurrency
//
// All Runner methods are safe for concurrent use once Add calls are done
// (Add must happen before Start). Each projector's Handle is called by one
// goroutine at a time, in position order, whoever delivers: concurrent Syncs
// from many dispatches, the async goroutine, Resume, Replay and the final
// phase of Rebuild take turns on a per-projector lock. A Rebuilder's shadow
// is fed concurrently with the live projector, so the two must not share
// mutable state. Async goroutines stop on Close or when Start's context
// ends; Close waits for them, up to [WithCloseTimeout] (default 10s).
// Handlers receive a context that Close cancels only after that timeout, so
// the record in hand is normally finished; a handler that does not return
// even then is named in Close's error and left behind. Every blocking call
// honours its context, including the wait for the per-projector lock, so a
// stuck inline projector does not hold other callers past their deadline.
//
// # Errors
//
// Two sentinels of its own, matched with errors.Is, the typed errors that
// carry detail (errors.As), and the store's and event's sentinels:
//
//   - [ErrStopped]: *[StoppedError] with the projector, position and cause;
//     returned by Sync for a stopped inline projector, by Rebuild for a
//     record failing in replay, and reported by Status.
//   - [ErrNotReached]: *[NotReachedError] from WaitFor, with the position
//     reached, the projector's State, the context's error (or
//     [store.ErrClosed])
//     and a Cause: the *StoppedError, the infrastructure error being
//     retried, or a *store.HeldBackError.
//   - *[GapError]: a hole in a contiguous log, wrapped in a *StoppedError.
//   - [event.ErrPanic]: *[event.PanicError], with the panic value and stack,
//     the cause of a StoppedError or dead letter when a projector panics.
//   - [store.ErrClosed]: any method after Close.
//   - [ErrLeaseHeld], [ErrFenced]: *[LeaseHeldError] and *[FencedError]
//     from a Leaser; a runner handles them itself (standby).
//   - [ErrUnfencedCheckpoints]: Add of a leased projector when the
//     checkpoint store cannot save fenced.
//
// Misuse (an unknown projector name, Sync before Start, a rebuild of a
// projector that is not a Rebuilder or is already rebuilding, Replay of a
// position that is not parked) gives a plain error with a clear text: fix
// the call rather than branch on it. Each method documents which errors it
// returns. Checkpoint store and log
// errors are returned wrapped, so their own sentinels stay reachable.
package projection
