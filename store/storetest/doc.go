// Package storetest is the conformance suite for implementations of
// store.Store and store.Log. The in-memory store and every durable adapter run
// the same suite, so a handler that works on one works on all of them.
//
// An adapter's test calls Run with a constructor that returns a fresh, empty
// store per subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Harness {
//			reg := event.NewRegistry()
//			if err := storetest.Register(reg); err != nil {
//				t.Fatal(err)
//			}
//			s := newMyStore(t, reg)
//			return storetest.Harness{Store: s, Log: s, Close: s.Close}
//		})
//	}
//
// The suite checks what the store package documents and what the rest of the
// library relies on: a unit of work commits its table writes and its events
// together or not at all; Update returns the position of its last event;
// positions strictly increase and stream versions count 1, 2, 3; optimistic
// checks (Tx.ExpectVersion, Table.PutIf) report *store.ConflictError, and
// among concurrent writers at the same expected version exactly one wins;
// Log.Read resumes exactly after a checkpoint; Wait wakes on commit and on
// cancellation; a cancelled context writes nothing; metadata travels with the
// events; and a closed store says store.ErrClosed.
//
// The suite never assumes that a committed event is readable at once: durable
// logs may hold back records behind a gap-safe horizon, so the suite waits
// with Log.Wait before it reads. Positions are only required to increase; a
// log that implements store.Contiguous and reports true is also checked for
// holes.
//
// # Concurrency
//
// Run and the subtests it starts are not parallel with each other; some
// subtests start goroutines against one store, which is how the suite checks
// that an implementation is safe for concurrent use. Run it with -race.
//
// # Errors
//
// Failures are reported through testing.T. The harness constructor should
// call t.Fatal (or t.Skip, for a backend that is not available) rather than
// return a broken Harness.
package storetest
