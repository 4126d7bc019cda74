package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/store"
)

// Store is a readmodel.Store kept in Redis: one hash per collection in the
// namespace's current generation (key "<generation prefix>s:<collection>"),
// a field per view, the view encoded by the Store's Codec (JSON unless
// made with NewStoreCodec). A string key is the field as it
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
	ns     *Namespace
	rel    string
	codec  Codec[V]
	pooled bool // encode into a pooled buffer (not JSON)
}

var _ readmodel.Store[string, int] = (*Store[string, int])(nil)

// Codec encodes a Store's views. A Store encodes with JSON unless given
// another codec by NewStoreCodec, typically a compact hand-written one
// for a view that is read often: decoding JSON is most of a read's CPU.
type Codec[V any] interface {
	// Append appends the encoding of v to dst. An error (the view cannot
	// be encoded) makes Put write nothing.
	Append(dst []byte, v V) ([]byte, error)
	// Decode decodes a stored value. The view may keep substrings of data
	// (strings are immutable), so a decoder need not copy them. Input that
	// is not a valid encoding must give an error, never a view.
	Decode(data string) (V, error)
}

// JSONCodec is the default Codec: encoding/json.
type JSONCodec[V any] struct{}

// Append implements Codec.
func (JSONCodec[V]) Append(dst []byte, v V) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(dst) == 0 {
		return b, err // Marshal's buffer is as good as an empty dst
	}
	return append(dst, b...), nil
}

// Decode implements Codec.
func (JSONCodec[V]) Decode(data string) (V, error) {
	var v V
	err := json.Unmarshal([]byte(data), &v)
	return v, err
}

// NewStore returns the collection named collection in ns, its views
// encoded as JSON.
func NewStore[K comparable, V any](ns *Namespace, collection string) *Store[K, V] {
	return NewStoreCodec[K](ns, collection, Codec[V](JSONCodec[V]{}))
}

// NewStoreCodec returns the collection named collection in ns, its views
// encoded by codec (JSON if codec is nil). Changing a collection's codec
// changes what is stored: either the new codec also decodes what the old
// one wrote, or the projector's version must change so the views are
// rebuilt.
func NewStoreCodec[K comparable, V any](ns *Namespace, collection string, codec Codec[V]) *Store[K, V] {
	if codec == nil {
		codec = JSONCodec[V]{}
	}
	_, isJSON := codec.(JSONCodec[V])
	return &Store[K, V]{ns: ns, rel: "s:" + collection, codec: codec, pooled: !isJSON}
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
	} else if raw, ok, err = s.ns.hget(ctx, s.rel, f); err != nil {
		return zero, err
	}
	if !ok {
		return zero, &store.NotFoundError{What: s.rel, Key: f}
	}
	return s.decode(f, raw)
}

func (s *Store[K, V]) decode(f, raw string) (V, error) {
	v, err := s.codec.Decode(raw)
	if err != nil {
		var zero V
		return zero, &store.InvalidError{What: fmt.Sprintf("view %s[%q]", s.rel, f), Reason: "stored value does not decode", Err: err}
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
	if !s.pooled {
		b, err := s.codec.Append(nil, v)
		if err != nil {
			return &store.InvalidError{What: "read-model view", Reason: "does not encode", Err: err}
		}
		return s.ns.writeOps(ctx, "hset", s.rel, f, string(b))
	}
	bp := encodeBufs.Get().(*[]byte)
	b, err := s.codec.Append((*bp)[:0], v)
	if err != nil {
		encodeBufs.Put(bp)
		return &store.InvalidError{What: "read-model view", Reason: "does not encode", Err: err}
	}
	val := string(b)
	if cap(b) <= maxPooledBuf {
		*bp = b
		encodeBufs.Put(bp)
	}
	return s.ns.writeOps(ctx, "hset", s.rel, f, val)
}

// encodeBufs holds Put's encoding buffers for codecs other than JSON
// (json.Marshal has its own): the encoded view is copied into the string
// the write carries, so the buffer can be reused. A new one starts at 1
// KiB so that a view is not encoded through a series of growing copies
// (a goroutine that moved to another P since its last Put misses the
// pool). Buffers grown past maxPooledBuf (a huge view) are left to the
// collector.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledBuf = 64 << 10

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
