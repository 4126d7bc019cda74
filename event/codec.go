package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
)

// ErrUnknownType is matched by errors for event type names that a Registry
// does not know.
var ErrUnknownType = errors.New("event: unknown event type")

// Registry maps event type names to Go types so that durable adapters can store
// payloads as bytes and decode them back into typed events. Payloads are
// encoded as JSON. Register types at start-up; a Registry is safe for
// concurrent use.
type Registry struct {
	mu    sync.RWMutex
	types map[string]reflect.Type
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: make(map[string]reflect.Type)} }

// Register adds E to r under E's type name. Registering the same name for two
// different Go types returns an error.
func Register[E Event](r *Registry) error {
	var zero E
	name := zero.EventType()
	t := reflect.TypeFor[E]()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.types == nil {
		r.types = make(map[string]reflect.Type)
	}
	if old, ok := r.types[name]; ok && old != t {
		return fmt.Errorf("event: type name %q already registered for %v", name, old)
	}
	r.types[name] = t
	return nil
}

// Types returns the registered type names, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.types))
	for k := range r.types {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Marshal encodes a payload. The event's type must be registered, so that
// anything written can be read back.
func (r *Registry) Marshal(e Event) ([]byte, error) {
	name := e.EventType()
	r.mu.RLock()
	_, ok := r.types[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, name)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("event: encode %q: %w", name, err)
	}
	return b, nil
}

// Unmarshal decodes data into a new value of the type registered as typeName.
// Unknown names return an error matching ErrUnknownType.
func (r *Registry) Unmarshal(typeName string, data []byte) (Event, error) {
	r.mu.RLock()
	t, ok := r.types[typeName]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, typeName)
	}
	var ptr reflect.Value
	if t.Kind() == reflect.Pointer {
		ptr = reflect.New(t.Elem())
	} else {
		ptr = reflect.New(t)
	}
	if err := json.Unmarshal(data, ptr.Interface()); err != nil {
		return nil, fmt.Errorf("event: decode %q: %w", typeName, err)
	}
	if t.Kind() == reflect.Pointer {
		return ptr.Interface().(Event), nil
	}
	return ptr.Elem().Interface().(Event), nil
}
