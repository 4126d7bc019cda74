package event

import (
	"context"
	"fmt"
	"sort"
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
}

// Handle calls the route for rec.Type, if any, and returns its error. A
// record whose payload is not the Go type routed for its name is an error
// that matches no sentinel (a corrupt or mis-registered record).
func (r *Router) Handle(ctx context.Context, rec Record) error {
	if fn := r.routes[rec.Type]; fn != nil {
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
