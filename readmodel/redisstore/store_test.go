package redisstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/readmodel/readmodeltest"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
	"github.com/cqrskit/cqrs/store"
)

func TestStoreConformance(t *testing.T) {
	c := client(t)
	readmodeltest.Run(t, func(t *testing.T) readmodel.Store[string, readmodeltest.Doc] {
		return redisstore.NewStore[string, readmodeltest.Doc](namespace(t, c, "docs"), "docs")
	})
}

func TestStoreKeysAndBadValues(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "keys")
	ctx := context.Background()
	type key struct {
		A string
		B int
	}
	s := redisstore.NewStore[key, float64](ns, "k")
	if err := s.Put(ctx, key{"x", 1}, 1.5); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, key{"x", 1}); err != nil || v != 1.5 {
		t.Fatalf("Get = %v, %v", v, err)
	}
	if _, err := s.Get(ctx, key{"x", 2}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing struct key: %v", err)
	}
	// A view that does not encode is refused and writes nothing.
	f := redisstore.NewStore[string, func()](ns, "f")
	if err := f.Put(ctx, "a", func() {}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Put of an unencodable view: %v, want store.ErrInvalid", err)
	}
	// A stored value of another shape is reported, not zeroed.
	str := redisstore.NewStore[string, string](ns, "shape")
	if err := str.Put(ctx, "a", "text"); err != nil {
		t.Fatal(err)
	}
	if _, err := redisstore.NewStore[string, int](ns, "shape").Get(ctx, "a"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Get of a value of another type: %v, want store.ErrInvalid", err)
	}
	views, found, err := str.GetMany(ctx, []string{"a", "b"})
	if err != nil || !found[0] || found[1] || views[0] != "text" {
		t.Fatalf("GetMany = %v %v %v", views, found, err)
	}
	if _, err := redisstore.NewNamespace(c, "p", "a:b"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("NewNamespace with ':' in the name: %v", err)
	}
}

// TestWriteOtherNamespaceInBatch: a read model of another namespace
// written inside a projector's batch would not commit with it, so it is
// refused.
func TestWriteOtherNamespaceInBatch(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	mine, other := namespace(t, c, "mine"), namespace(t, c, "other")
	foreign := redisstore.NewStore[string, int](other, "x")
	p := redisstore.NewProjector(mine, func(ctx context.Context, _ *redisstore.Tx, rec event.Record) error {
		return foreign.Put(ctx, "k", 1)
	})
	if err := p.Handle(ctx, event.Record{Position: 1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("write to another namespace in a batch: %v, want store.ErrInvalid", err)
	}
	if err := p.FlushBatch(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := foreign.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused write was made: %v", err)
	}
}
