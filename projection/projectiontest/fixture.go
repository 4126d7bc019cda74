package projectiontest

import (
	"context"
	"reflect"
	"time"

	"github.com/google/uuid"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/internal/safe"
	"github.com/cqrskit/cqrs/projection"
)

// DefaultStream is the stream of events given without On.
const DefaultStream = "test/1"

// TB is the part of testing.TB the fixture uses; *testing.T and *testing.B
// satisfy it.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Fixture feeds records to a projector. Make one with Given.
type Fixture struct {
	t        TB
	h        event.Handler
	recs     []event.Record
	versions map[string]uint64
	next     time.Time
}

// Given returns a fixture for h and feeds it events in order, as records at
// positions 1, 2, 3... It fails the test (Fatalf) when h returns an error or
// panics. Wrap an event with On, At or WithMetadata to set its stream,
// commit time or metadata.
func Given(t TB, h event.Handler, events ...event.Event) *Fixture {
	t.Helper()
	f := &Fixture{t: t, h: h, versions: make(map[string]uint64), next: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	return f.When(events...)
}

// When feeds more events, after those already given, like Given.
func (f *Fixture) When(events ...event.Event) *Fixture {
	f.t.Helper()
	for _, e := range events {
		rec := f.record(e)
		if err := handle(f.h, rec); err != nil {
			f.t.Fatalf("projectiontest: %s at position %v on %s: %v", rec.Type, rec.Position, rec.Stream, err)
		}
	}
	return f
}

// Try feeds one event and returns the projector's error instead of failing
// the test; a panic comes back as a *event.PanicError. The event counts
// as committed either way: the next one gets the next position.
func (f *Fixture) Try(e event.Event) error {
	return handle(f.h, f.record(e))
}

// Then fails the test (Errorf) unless got and want are deeply equal
// (reflect.DeepEqual); what names the checked value in the message. It
// returns f, so checks chain.
func (f *Fixture) Then(what string, got, want any) *Fixture {
	f.t.Helper()
	if !reflect.DeepEqual(got, want) {
		f.t.Errorf("%s: got %#v, want %#v", what, got, want)
	}
	return f
}

// Position returns the position of the last record fed (0 before any).
func (f *Fixture) Position() event.Position { return event.Position(len(f.recs)) }

// Records returns a copy of the records fed so far, in order.
func (f *Fixture) Records() []event.Record { return append([]event.Record(nil), f.recs...) }

// Rebuild checks the fixture's projector as projection.Runner.Rebuild uses
// it: it must implement projection.Rebuilder. It takes a shadow, feeds it
// every record fed so far, and checks that view did not change meanwhile
// (the shadow is isolated from the live read model); then it swaps and
// checks that view equals what it was (replaying the log reproduces the
// view, so the projector is deterministic). view returns a comparable
// snapshot of the live read model, such as a copied map. Later When calls
// feed the swapped-in read model.
func (f *Fixture) Rebuild(view func() any) *Fixture {
	f.t.Helper()
	rb, ok := f.h.(projection.Rebuilder)
	if !ok {
		f.t.Fatalf("projectiontest: %T does not implement projection.Rebuilder", f.h)
		return f
	}
	before := view()
	shadow, err := rb.Shadow(context.Background())
	if err != nil {
		f.t.Fatalf("projectiontest: Shadow: %v", err)
		return f
	}
	if shadow.Handler == nil || shadow.Swap == nil {
		f.t.Fatalf("projectiontest: Shadow returned no Handler or no Swap")
		return f
	}
	for _, rec := range f.recs {
		if err := handle(shadow.Handler, rec); err != nil {
			f.t.Fatalf("projectiontest: shadow: %s at position %v on %s: %v", rec.Type, rec.Position, rec.Stream, err)
			return f
		}
	}
	if got := view(); !reflect.DeepEqual(got, before) {
		f.t.Errorf("projectiontest: feeding the shadow changed the live view:\n got %#v\nwant %#v", got, before)
	}
	if shadow.Flush != nil {
		if err := safe.Call(func() error { return shadow.Flush(context.Background()) }); err != nil {
			f.t.Fatalf("projectiontest: Shadow.Flush: %v", err)
			return f
		}
	}
	shadow.Swap()
	if got := view(); !reflect.DeepEqual(got, before) {
		f.t.Errorf("projectiontest: rebuilt view differs from the live one:\n got %#v\nwant %#v", got, before)
	}
	return f
}

func (f *Fixture) record(e event.Event) event.Record {
	s := unwrap(e)
	if s.stream == "" {
		s.stream = DefaultStream
	}
	if !s.at.IsZero() {
		f.next = s.at
	}
	f.versions[s.stream]++
	pos := event.Position(len(f.recs) + 1)
	rec := event.Record{
		ID:       uuid.NewSHA1(uuid.NameSpaceOID, []byte("projectiontest/"+pos.String())),
		Type:     s.e.EventType(),
		Stream:   s.stream,
		Version:  f.versions[s.stream],
		Position: pos,
		Time:     f.next,
		Metadata: s.md,
		Data:     s.e,
	}
	f.next = f.next.Add(time.Second)
	f.recs = append(f.recs, rec)
	return rec
}

func handle(h event.Handler, rec event.Record) error {
	return safe.Call(func() error { return h.Handle(context.Background(), rec) })
}

// spec is an event with envelope settings; On, At and WithMetadata make
// and extend it, and the fixture unwraps it into a record.
type spec struct {
	e      event.Event
	stream string
	at     time.Time
	md     event.Metadata
}

func (s spec) EventType() string { return s.e.EventType() }

func unwrap(e event.Event) spec {
	if s, ok := e.(spec); ok {
		return s
	}
	return spec{e: e}
}

// On puts e on stream (default DefaultStream). It composes with At and
// WithMetadata: At(t, On("product/p1", e)).
func On(stream string, e event.Event) event.Event {
	s := unwrap(e)
	s.stream = stream
	return s
}

// At sets e's commit time. Events after it default to one second later each.
func At(t time.Time, e event.Event) event.Event {
	s := unwrap(e)
	s.at = t
	return s
}

// WithMetadata sets e's metadata (correlation, causation, user).
func WithMetadata(md event.Metadata, e event.Event) event.Event {
	s := unwrap(e)
	s.md = md
	return s
}
