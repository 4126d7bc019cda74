// Package redisstore keeps read models in Redis, applied exactly once: a
// projector's batch of changes and its checkpoint are written by one atomic
// script, so a crash or a lost write rolls both back together.
//
// It is its own module so that importing the core never pulls in the Redis
// client.
//
// # Pieces
//
//   - [Namespace]: one projector's keys, in generations (see its key
//     layout); readers resolve the current generation and read in one
//     server-side script, one round trip per query.
//   - [Store]: a readmodel.Store (views in a hash, JSON or a [Codec]), passing
//     readmodeltest; and the query blocks [Ranking] (top-K), [SortedSet]
//     and [Index] (cursor paging), [Recent] (newest-first bounded lists)
//     and [Averages] (exact running averages of integers), the Redis
//     counterparts of readmodel's.
//   - [Projector]: a projection.Projector whose apply function writes those
//     read models with the context it gets; the writes of a runner batch
//     are buffered in a [Tx], compacted, and committed with the checkpoint
//     in one EVALSHA that first checks the checkpoint the batch started
//     from and, with a lease in the context, the fencing token. It is a
//     projection.SelfCheckpointer, BatchFlusher, Replayer and Rebuilder
//     (rebuilds write a new generation while readers read the old one).
//   - [Leases]: a projection.Leaser and FencedCheckpoints on Redis, for
//     runners in several processes.
//
// # Guarantees
//
// Every event is applied exactly once: a batch and its checkpoint commit
// together or not at all, a redelivered record at or below the checkpoint
// is skipped, and a commit whose reply was lost is recognised when it is
// retried. Redis without fsync can lose its last writes in a crash; the
// view and the checkpoint then go back together, the projector notices
// (its next batch finds the checkpoint behind what it committed) and
// stops with a conflict, and a restarted runner re-applies from Redis's
// checkpoint. A reader never sees part of a batch, nor a generation being
// rebuilt.
//
// The scripts compute key names from the generation, so the package needs
// a single Redis server (replicas are fine), not Redis Cluster.
//
// # Concurrency
//
// Namespace, Store, the blocks and Leases are safe for concurrent use.
// A Projector is driven by one runner (the runner calls Handle and
// FlushBatch from one goroutine per projector or partition); any number
// of readers in any number of processes read concurrently. Two runners
// that both drive one projector are refused (a conflict) unless they hold
// its lease in turns. Projector.Close waits for the background deletion of
// an old generation.
//
// # Errors
//
// Get of a missing view returns an error matching store.ErrNotFound.
// Values that do not encode or decode, and bad names, give a
// *store.InvalidError (store.ErrInvalid). Driver errors are wrapped; a
// failed connection or a loading, busy or read-only server also matches
// store.ErrUnavailable, so a runner retries it, and a closed client
// matches store.ErrClosed. A commit refused because the checkpoint moved
// (or Redis lost writes, or a newer generation was swapped in) is a
// *store.ConflictError; one refused for a stale lease is a
// *projection.FencedError. Every call honours its context.
package redisstore
