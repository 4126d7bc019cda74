package event_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
)

type priced struct {
	SKU   string
	Cents int64
}

func (priced) EventType() string { return "test.Priced" }

type renamed struct{ Name string }

func (*renamed) EventType() string { return "test.Renamed" }

func TestPositionTokenRoundTrip(t *testing.T) {
	for _, p := range []event.Position{0, 1, 42, 1<<63 + 5} {
		got, err := event.ParsePosition(p.String())
		require.NoError(t, err)
		assert.Equal(t, p, got)
		b, err := json.Marshal(struct{ P event.Position }{p})
		require.NoError(t, err)
		var back struct{ P event.Position }
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, p, back.P)
	}
	for _, bad := range []string{"", "-1", "x", "1.5", "18446744073709551616"} {
		_, err := event.ParsePosition(bad)
		assert.ErrorIs(t, err, event.ErrBadPosition, bad)
	}
}

func TestMetadataFromContext(t *testing.T) {
	assert.Equal(t, event.Metadata{}, event.MetadataFrom(context.Background()))
	md := event.Metadata{CorrelationID: "c", CausationID: "k", UserID: "u"}
	assert.Equal(t, md, event.MetadataFrom(event.WithMetadata(context.Background(), md)))
}

func TestRouterRoutesByTypeAndIgnoresOthers(t *testing.T) {
	var r event.Router
	var got []string
	event.On(&r, func(_ context.Context, rec event.Record, e priced) error {
		got = append(got, fmt.Sprintf("%s=%d@%v", e.SKU, e.Cents, rec.Position))
		return nil
	})
	event.On(&r, func(_ context.Context, _ event.Record, e *renamed) error {
		got = append(got, "renamed "+e.Name)
		return nil
	})
	ctx := context.Background()
	require.NoError(t, r.Handle(ctx, event.Record{Type: "test.Priced", Position: 3, Data: priced{"a", 5}}))
	require.NoError(t, r.Handle(ctx, event.Record{Type: "test.Renamed", Data: &renamed{"b"}}))
	require.NoError(t, r.Handle(ctx, event.Record{Type: "test.Other"}))
	assert.Equal(t, []string{"a=5@3", "renamed b"}, got)
	assert.True(t, r.Handles("test.Priced"))
	assert.False(t, r.Handles("test.Other"))
	assert.Equal(t, []string{"test.Priced", "test.Renamed"}, r.Types())

	err := r.Handle(ctx, event.Record{Type: "test.Priced", Data: &renamed{}})
	assert.Error(t, err, "a payload that does not match its type name is an error, not a panic")
	assert.Panics(t, func() {
		event.On(&r, func(context.Context, event.Record, priced) error { return nil })
	})
}

func TestRegistryRoundTrip(t *testing.T) {
	r := event.NewRegistry()
	require.NoError(t, event.Register[priced](r))
	require.NoError(t, event.Register[*renamed](r))
	require.NoError(t, event.Register[priced](r), "re-registering the same type is fine")
	assert.Equal(t, []string{"test.Priced", "test.Renamed"}, r.Types())

	b, err := r.Marshal(priced{SKU: "a", Cents: 7})
	require.NoError(t, err)
	e, err := r.Unmarshal("test.Priced", b)
	require.NoError(t, err)
	assert.Equal(t, priced{SKU: "a", Cents: 7}, e)

	b, err = r.Marshal(&renamed{Name: "n"})
	require.NoError(t, err)
	e, err = r.Unmarshal("test.Renamed", b)
	require.NoError(t, err)
	assert.Equal(t, &renamed{Name: "n"}, e)

	_, err = r.Unmarshal("nope", b)
	assert.ErrorIs(t, err, event.ErrUnknownType)
	_, err = event.NewRegistry().Marshal(priced{})
	assert.ErrorIs(t, err, event.ErrUnknownType)
	_, err = r.Unmarshal("test.Priced", []byte("{"))
	assert.Error(t, err)
}

type clash struct{}

func (clash) EventType() string { return "test.Priced" }

func TestRegistryRejectsNameClash(t *testing.T) {
	r := event.NewRegistry()
	require.NoError(t, event.Register[priced](r))
	assert.Error(t, event.Register[clash](r))
}

type unnamed struct{}

func (unnamed) EventType() string { return "" }

// TestRouterFindsRoutesWhereverTheTypeNameLives: a record's Type is found
// whether it is the very string the event's EventType returns (the router's
// lookup by address) or an equal string built elsewhere (as a durable log
// decodes it), among many routes and for an empty type name.
func TestRouterFindsRoutesWhereverTheTypeNameLives(t *testing.T) {
	var r event.Router
	got := map[string]int{}
	event.On(&r, func(_ context.Context, rec event.Record, _ priced) error { got[rec.Type]++; return nil })
	event.On(&r, func(_ context.Context, rec event.Record, _ *renamed) error { got[rec.Type]++; return nil })
	event.On(&r, func(_ context.Context, rec event.Record, _ unnamed) error { got["<empty>"]++; return nil })
	ctx := context.Background()
	copied := func(s string) string { return string(append([]byte(nil), s...)) }
	for _, rec := range []event.Record{
		{Type: priced{}.EventType(), Data: priced{}},
		{Type: copied(priced{}.EventType()), Data: priced{}},
		{Type: (*renamed)(nil).EventType(), Data: &renamed{}},
		{Type: copied("test.Renamed"), Data: &renamed{}},
		{Type: "", Data: unnamed{}},
		{Type: priced{}.EventType()[:6], Data: priced{}}, // "test.P": at the same address, but another name
		{Type: "test.Other", Data: priced{}},
	} {
		require.NoError(t, r.Handle(ctx, rec))
	}
	assert.Equal(t, map[string]int{"test.Priced": 2, "test.Renamed": 2, "<empty>": 1}, got)
	assert.True(t, r.Handles("test.Priced"))
	assert.False(t, r.Handles("test.P"))
}
