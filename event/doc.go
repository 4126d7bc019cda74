// Package event defines the envelope of a committed event (Record), typed
// routing of records to handlers (Router and On), and the codec registry
// that durable adapters use to store payloads as bytes (Registry).
//
// Domain events are plain Go values that implement Event by naming their
// type. The name is the event's identity in the log, so it must be stable;
// On and Register call EventType on the zero value of the type, so it must
// not depend on the receiver's contents.
//
// # The in-process bus
//
// There is no separate bus type: a Router added to a projection.Runner as
// an inline projector is the synchronous in-process bus. It receives each
// committed record in commit order, typed, before command.Bus.Dispatch
// returns:
//
//	var notify event.Router
//	event.On(&notify, func(ctx context.Context, rec event.Record, e PriceChanged) error { ... })
//	runner.Add(projection.Named("notify", &notify))
//
// Each projector keeps its own checkpoint, so a subscriber that fails is
// retried (or stopped, or parks the record) on its own, and the others see
// each record once.
//
// # Positions and tokens
//
// Every record has a global Position in the log. Positions strictly increase
// in commit order, and a dispatch returns the position of its last event as a
// read-your-writes token. Position.String and ParsePosition turn it into text
// and back so it can travel in an HTTP header.
//
// # Concurrency
//
// Records are values and payloads are treated as immutable, so records can be
// shared between goroutines. A Router is safe for concurrent Handle calls
// once its routes are registered. A Registry is safe for concurrent use.
//
// # Errors
//
// ParsePosition returns an error matching ErrBadPosition. Registry.Marshal
// and Registry.Unmarshal return errors matching ErrUnknownType for names not
// registered. Router.Handle returns its handler's error, and an error when
// a record's payload is not the Go type registered for its name. A
// *PanicError (ErrPanic) reports a handler or projector that panicked.
package event
