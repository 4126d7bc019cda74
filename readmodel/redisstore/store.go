package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/store"
)

// Store is a readmodel.Store kept in Redis: one hash per collection in the
// namespace's current generation (key "<generation prefix>s:<collection>"),
// a field per view, the view JSON-encoded. A string key is the field as it
// is; other keys are JSON-encoded (so they must encode deterministically:
// numbers, strings, structs of them).
//
// Inside a Projector's apply function, Put and Delete with the context the
// function got are buffered in the batch and committed with its
// checkpoint, and Get sees the batch's own writes. Elsewhere each call is
// one round trip, and Get reads the current generation atomically.
//
// Get returns an error matching store.ErrNotFound for a missing key, and
// errors matching ctx.Err(); a value that does not decode gives a
// *store.InvalidError. A Store is safe for concurrent use.
type Store[K comparable, V any] struct {
	ns  *Namespace
	rel string
}

var _ readmodel.Store[string, int] = (*Store[string, int])(nil)

// NewStore returns the collection named collection in ns.
func NewStore[K comparable, V any](ns *Namespace, collection string) *Store[K, V] {
	return &Store[K, V]{ns: ns, rel: "s:" + collection}
}

func (s *Store[K, V]) field(k K) (string, error) {
	switch k := any(k).(type) {
	case string:
		return k, nil
	case int:
		return strconv.Itoa(k), nil
	case int64:
		return strconv.FormatInt(k, 10), nil
	case uint64:
		return strconv.FormatUint(k, 10), nil
	}
	b, err := json.Marshal(k)
	if err != nil {
		return "", &store.InvalidError{What: "read-model key", Reason: "does not encode", Err: err}
	}
	return string(b), nil
}

// Get implements readmodel.Store.
func (s *Store[K, V]) Get(ctx context.Context, key K) (V, error) {
	var zero V
	f, err := s.field(key)
	if err != nil {
		return zero, err
	}
	var raw string
	var ok bool
	if tx, in := TxFrom(ctx); in && tx.ns.base == s.ns.base {
		raw, ok, err = tx.hget(ctx, s.rel, f)
		if err != nil {
			return zero, err
		}
	} else {
		res, err := s.ns.read(ctx, readOp{op: "hget", rel: s.rel, a: f})
		if err != nil {
			return zero, err
		}
		raw, ok = res[0].(string)
	}
	if !ok {
		return zero, &store.NotFoundError{What: s.rel, Key: f}
	}
	return s.decode(f, raw)
}

func (s *Store[K, V]) decode(f, raw string) (V, error) {
	var v V
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return v, &store.InvalidError{What: fmt.Sprintf("view %s[%q]", s.rel, f), Reason: "stored value does not decode", Err: err}
	}
	return v, nil
}

// GetMany returns the views of keys in one round trip, in key order; found
// reports which exist.
func (s *Store[K, V]) GetMany(ctx context.Context, keys []K) (views []V, found []bool, err error) {
	ops := make([]readOp, len(keys))
	for i, k := range keys {
		f, err := s.field(k)
		if err != nil {
			return nil, nil, err
		}
		ops[i] = readOp{op: "hget", rel: s.rel, a: f}
	}
	if len(ops) == 0 {
		return nil, nil, nil
	}
	res, err := s.ns.read(ctx, ops...)
	if err != nil {
		return nil, nil, err
	}
	views, found = make([]V, len(keys)), make([]bool, len(keys))
	for i, r := range res {
		if raw, ok := r.(string); ok {
			if views[i], err = s.decode(ops[i].a, raw); err != nil {
				return nil, nil, err
			}
			found[i] = true
		}
	}
	return views, found, nil
}

// Put implements readmodel.Store. A view that does not encode gives a
// *store.InvalidError and writes nothing.
func (s *Store[K, V]) Put(ctx context.Context, key K, v V) error {
	f, err := s.field(key)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return &store.InvalidError{What: "read-model view", Reason: "does not encode", Err: err}
	}
	return s.ns.writeOps(ctx, "hset", s.rel, f, string(b))
}

// Delete implements readmodel.Store.
func (s *Store[K, V]) Delete(ctx context.Context, key K) error {
	f, err := s.field(key)
	if err != nil {
		return err
	}
	return s.ns.writeOps(ctx, "hdel", s.rel, f)
}

// Len returns the number of views in the current generation.
func (s *Store[K, V]) Len(ctx context.Context) (int, error) {
	res, err := s.ns.read(ctx, readOp{op: "hlen", rel: s.rel})
	if err != nil {
		return 0, err
	}
	n, _ := res[0].(int64)
	return int(n), nil
}
