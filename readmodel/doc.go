// Package readmodel stores the query side of a CQRS application: views that
// projections build from events, each shaped for one query, read by many
// goroutines while projections keep them up to date.
//
// # Overview
//
// [Store] is the pluggable interface for one collection of views: Get, Put
// and Delete by key. [Map] is its in-memory implementation, tuned so that
// a lookup costs about what a Go map lookup costs, allocates nothing, and
// never waits for a writer. Durable backends implement Store too, and the
// conformance suite in package readmodeltest checks any implementation
// against the same contract.
//
// The building blocks keep views cheap to maintain, so that queries read a
// precomputed answer instead of aggregating at read time:
//
//   - [RunningAverage]: an incremental mean (a product's rating), updated
//     per event in O(1), with rounding that is robust to float error.
//   - [Recent]: a bounded newest-first list (the five latest reviews).
//   - [Ranking]: key to score, best first, for "top rated" views: the top
//     k cost O(k) from a published snapshot, not a sort of every key.
//   - [SortedSet] and [Index]: ordered secondary-index sets ("in stock",
//     "products by seller") with cursor paging in O(log n + limit).
//
// # Immutability
//
// Readers get views without copying, so a view must never change once it
// is stored: build a new value and store that. RunningAverage and Recent
// are immutable values designed for this; a slice or map inside a view
// must likewise be rebuilt, not modified in place. [Map.Update] is the
// read-modify-write primitive for projections: it hands the current view to
// a function that returns the next one.
//
// # Concurrency
//
// Every type in this package is safe for concurrent use by multiple
// goroutines, and readers never block:
//
//   - Map.Load and Map.Get take no lock and write no shared memory, so
//     they scale with cores. Writers lock one of 64 shards; replacing an
//     existing key's value is one atomic pointer store.
//   - SortedSet and Index are persistent (copy-on-write) B-trees whose
//     root is published with an atomic store. Each read works on an
//     immutable snapshot: results are always sorted, never hold a key
//     twice, and show each entry either before or after a concurrent write.
//     Writers are serialised per structure (per group for Index).
//   - Ranking keeps its full order in a B+tree only writers touch, changed
//     in place, and publishes an immutable snapshot of the best
//     RankingTopCache entries whenever a write changes them, so Top reads
//     have the same guarantees without a lock while a Set moves an entry
//     in place without allocating. Reads past the snapshot take the
//     writer's lock.
//   - Map.Range, Map.Len, Map.Clear, Index.Groups and Index.GroupCount
//     are weakly consistent; see their documentation.
//
// Functions passed to [Map.Update] run with the key's shard locked and
// must not call back into the same Map.
//
// # Errors
//
// [Map.Get] returns an error matching [store.ErrNotFound] (with [errors.Is]) for
// a missing key; Put and Delete always return nil, and deleting a missing
// key is not an error. Map never blocks, so it ignores contexts; durable
// stores return an error matching ctx.Err() when the context is done, and
// wrap their driver errors so that both the sentinel and the cause can be
// matched. The building blocks return no errors: misuse (NewRecent with a
// capacity below 1, Recent.At out of range) panics. UnmarshalJSON of
// RunningAverage and Recent returns an error for data no sequence of
// calls could produce (such as a negative count, or one above the 1<<53
// values a RunningAverage holds).
package readmodel
