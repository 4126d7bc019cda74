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
// on the command's latency. Use it for cheap views that must be fresh. An
// inline projector (or an event.Bus subscriber fed inline) must not
// dispatch commands: the nested dispatch would wait for the delivery it is
// part of. Process managers that react with commands belong in async
// projectors.
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
// the position of the last record applied, and the projector's Version. At
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
// such a log skips a position, the projector stops with a *[GapError]
// ([ErrGap]) instead of jumping the hole.
//
// # Failures
//
// A projector that returns an error, or panics (a *[PanicError], [ErrPanic]),
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
//     cannot be stored, the projector stops at the record instead.
//
// # Rebuild
//
// A projector that implements [Rebuilder] can be rebuilt without downtime:
// [Runner.Rebuild] replays the whole log into a fresh shadow read model while
// queries keep reading the live one, pauses live delivery only to catch the
// shadow up to the head, then swaps it in atomically. A projector that
// implements [Versioned] is rebuilt automatically at Start when its Version
// differs from the one saved in its checkpoint; one that is not a Rebuilder
// makes Start fail with [ErrNotRebuildable] instead.
//
// # Status and logging
//
// [Runner.Status] reports each projector's [State], checkpoint, the log head,
// how many positions and how much commit time it is behind, its error and its
// parked count. With [WithLogger] the runner logs stops and parks (at error
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
// ends; Close waits for them, and no goroutine outlives it. Handlers receive
// a context that Close does not cancel, so the record in hand is finished.
//
// # Errors
//
// Sentinels, matched with errors.Is, and the typed errors that carry detail
// (errors.As):
//
//   - [ErrStopped]: *[StoppedError] with the projector, position and cause;
//     returned by Sync for a stopped inline projector, by Rebuild for a
//     record failing in replay, and reported by Status.
//   - [ErrNotReached]: *[NotReachedError] from WaitFor, with the position
//     reached, the projector's State, the context's error (or [ErrClosed])
//     and, when the projector is stopped, the *StoppedError as Cause.
//   - [ErrGap]: *[GapError], wrapped in a *StoppedError.
//   - [ErrPanic]: *[PanicError], with the panic value and stack.
//   - [ErrUnknownProjector], [ErrNotRebuildable], [ErrRebuilding],
//     [ErrNotParked], [ErrNotStarted], [ErrClosed].
//
// Each method documents which of them it returns. Checkpoint store and log
// errors are returned wrapped, so their own sentinels stay reachable.
package projection
