// Package event defines the envelope of a committed event (Record), typed
// routing of records to handlers (Router and On), a synchronous in-process
// bus (Bus), and the codec registry that durable adapters use to store
// payloads as bytes (Registry).
//
// Domain events are plain Go values that implement Event by naming their
// type. The name is the event's identity in the log, so it must be stable;
// On and Register call EventType on the zero value of the type, so it must
// not depend on the receiver's contents.
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
// once its routes are registered. A Bus is safe for concurrent use; Subscribe
// never blocks Publish. A Registry is safe for concurrent use.
//
// # Errors
//
// ParsePosition returns an error matching ErrBadPosition. Registry.Marshal
// and Registry.Unmarshal return errors matching ErrUnknownType for names not
// registered. Bus.Publish joins the errors of its subscribers (errors.Join),
// after delivering to every one of them; publishing the same record again
// (a runner's retry) delivers it only to the subscribers that failed on it,
// so each subscriber sees each record once (see Bus).
package event
