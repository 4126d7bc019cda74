// Package readmodeltest is the conformance suite for implementations of
// [readmodel.Store]. The in-memory [readmodel.Map] and every durable
// backend run the same suite, so code written against the interface
// behaves the same whichever store is plugged in.
//
// Use it from a test of the implementation:
//
//	func TestConformance(t *testing.T) {
//		readmodeltest.Run(t, func(t *testing.T) readmodel.Store[string, readmodeltest.Doc] {
//			return newTestStore(t) // empty, isolated, cleaned up with t.Cleanup
//		})
//	}
//
// The suite uses only the standard library's testing package.
//
// # Concurrency
//
// The suite runs goroutines against one store in some subtests; run it
// with -race to check the implementation's synchronisation. Subtests do
// not run in parallel with each other, but each asks newStore for a fresh
// store, which must not share keys with any other store it returned.
//
// # Errors
//
// The suite checks the error contract of [readmodel.Store]: Get of a
// missing key returns an error matching [store.ErrNotFound], Put and
// Delete succeed (deleting a missing key included), and with a cancelled
// context an operation either ignores the context or returns an error
// matching [context.Canceled].
package readmodeltest
