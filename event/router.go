package event

import (
	"context"
	"fmt"
	"sort"
	"unsafe"
)

// Handler consumes records. Every projector is a Handler; a Router is the
// usual one.
type Handler interface {
	Handle(ctx context.Context, rec Record) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, rec Record) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, rec Record) error { return f(ctx, rec) }

// Router routes records to typed functions by event type name. Register routes
// with On before the first Handle; a Router is then safe for concurrent use.
// Records of a type with no route are ignored, which lets a projector declare
// only the events it cares about.
type Router struct {
	routes map[string]func(context.Context, Record) error
	// byAddr finds a route by the address and length of the type name's
	// bytes, without hashing them: a log that sets Record.Type to what
	// EventType returns hands over the very string On registered (a
	// string constant, usually), so this lookup hits. A record whose Type
	// is an equal string elsewhere in memory (decoded from a durable log,
	// say) misses it and is looked up in routes by value. Strings are
	// immutable and the table keeps the names alive, so an address and
	// length found here always name the routed type.
	byAddr []addrRoute // open addressing, a power of two long, half full at most
}

type addrRoute struct {
	p  *byte // nil: an empty slot
	n  int
	fn func(context.Context, Record) error
}

// addrHash spreads a string's address over the table (Fibonacci hashing).
func addrHash(p *byte, mask uintptr) uintptr {
	return uintptr(unsafe.Pointer(p)) * 0x9E3779B97F4A7C15 >> 32 & mask
}

// route returns the route for the type name, or nil.
func (r *Router) route(name string) func(context.Context, Record) error {
	if t := r.byAddr; len(t) > 0 && len(name) > 0 {
		p := unsafe.StringData(name)
		mask := uintptr(len(t) - 1)
		for i := addrHash(p, mask); ; i = (i + 1) & mask {
			e := &t[i]
			if e.p == p && e.n == len(name) {
				return e.fn
			}
			if e.p == nil {
				break
			}
		}
	}
	return r.routes[name]
}

// index rebuilds byAddr from routes.
func (r *Router) index() {
	size := 4
	for size < 2*len(r.routes) {
		size *= 2
	}
	t := make([]addrRoute, size)
	mask := uintptr(size - 1)
	for name, fn := range r.routes {
		if name == "" {
			continue // no address to go by: found in routes
		}
		p := unsafe.StringData(name)
		i := addrHash(p, mask)
		for t[i].p != nil {
			i = (i + 1) & mask
		}
		t[i] = addrRoute{p: p, n: len(name), fn: fn}
	}
	r.byAddr = t
}

var _ Handler = (*Router)(nil)

// On routes events of type E to fn. fn receives the envelope and the payload
// already asserted to E, so user code never type-asserts. It panics if E is
// already routed on r, because two routes for one type is a wiring bug.
func On[E Event](r *Router, fn func(ctx context.Context, rec Record, e E) error) {
	var zero E
	name := zero.EventType()
	if r.routes == nil {
		r.routes = make(map[string]func(context.Context, Record) error)
	}
	if _, dup := r.routes[name]; dup {
		panic(fmt.Sprintf("event: route for %q registered twice", name))
	}
	r.routes[name] = func(ctx context.Context, rec Record) error {
		e, ok := rec.Data.(E)
		if !ok {
			return fmt.Errorf("event: record %s at %v has type name %q but payload %T", rec.ID, rec.Position, rec.Type, rec.Data)
		}
		return fn(ctx, rec, e)
	}
	r.index()
}

// Handle calls the route for rec.Type, if any, and returns its error. A
// record whose payload is not the Go type routed for its name is an error
// that matches no sentinel (a corrupt or mis-registered record).
func (r *Router) Handle(ctx context.Context, rec Record) error {
	if fn := r.route(rec.Type); fn != nil {
		return fn(ctx, rec)
	}
	return nil
}

// Handles reports whether r has a route for the event type name.
func (r *Router) Handles(typeName string) bool {
	_, ok := r.routes[typeName]
	return ok
}

// Types returns the routed event type names, sorted.
func (r *Router) Types() []string {
	out := make([]string, 0, len(r.routes))
	for k := range r.routes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
