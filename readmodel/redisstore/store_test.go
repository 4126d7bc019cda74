package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// upperCodec stores a string view upper-cased behind a '#', and refuses
// to encode "bad" or decode a value without the '#': a codec other than
// JSON, to see that a Store uses it both ways.
type upperCodec struct{}

func (upperCodec) Append(dst []byte, v string) ([]byte, error) {
	if v == "bad" {
		return dst, errors.New("bad view")
	}
	return append(append(dst, '#'), strings.ToUpper(v)...), nil
}

func (upperCodec) Decode(data string) (string, error) {
	if !strings.HasPrefix(data, "#") {
		return "", errors.New("no #")
	}
	return data[1:], nil
}

// TestStoreCodec: a Store made with NewStoreCodec writes and reads its
// views with the codec, inside and outside a projector's batch; a codec's
// encode error refuses the Put (nothing written) and a decode error is a
// store.ErrInvalid that carries it.
func TestStoreCodec(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "codec")
	ctx := context.Background()
	s := redisstore.NewStoreCodec[string](ns, "c", redisstore.Codec[string](upperCodec{}))
	if err := s.Put(ctx, "a", "hello"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, "a"); err != nil || v != "HELLO" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if raw, err := redisstore.NewStore[string, json.RawMessage](ns, "c").Get(ctx, "a"); err == nil {
		t.Fatalf("the stored value is JSON: %s", raw)
	}
	if err := s.Put(ctx, "b", "bad"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Put of a view the codec refuses: %v", err)
	}
	if _, err := s.Get(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused view was written: %v", err)
	}
	if err := redisstore.NewStoreCodec[string](ns, "c", redisstore.Codec[string](nil)).Put(ctx, "j", "json"); err != nil { // nil: JSON
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "j"); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "no #") {
		t.Fatalf("Get of a value the codec does not decode: %v", err)
	}
	p := redisstore.NewProjector(ns, func(ctx context.Context, _ *redisstore.Tx, rec event.Record) error {
		if err := s.Put(ctx, "t", "in batch"); err != nil {
			return err
		}
		if v, err := s.Get(ctx, "t"); err != nil || v != "IN BATCH" {
			return fmt.Errorf("Get in the batch = %q, %v", v, err)
		}
		return nil
	})
	if err := p.Handle(ctx, event.Record{Position: 1}); err != nil {
		t.Fatal(err)
	}
	if err := p.FlushBatch(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, "t"); err != nil || v != "IN BATCH" {
		t.Fatalf("Get after the batch = %q, %v", v, err)
	}
}
