package pgstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cqrskit/cqrs/event"
)

// The array parameters of the append implement pgtype.ArrayGetter
// themselves, for when the append goes through pgx's batch (a traced pool;
// otherwise sendAppendRaw encodes them by hand). pgx encodes a plain []int64, []string or [][16]byte through
// an interface value per element, which costs an allocation per element
// (some 700 for a unit of work of 100 events); these hand pgx a pointer into
// the slice instead, which fits an interface without one. The bytes sent are
// the same. pgx uses them where it knows the parameter's type from the
// statement's description, as in its default mode; the modes that do not
// describe statements (QueryExecModeExec, the simple protocol) cannot
// encode the event ids' [16]byte arrays either and were never supported.
type (
	int8Array []int64
	textArray []string
	uuidArray [][16]byte

	int8Elem int64
	textElem string
	uuidElem [16]byte
)

var (
	_ pgtype.ArrayGetter = int8Array(nil)
	_ pgtype.ArrayGetter = textArray(nil)
	_ pgtype.ArrayGetter = uuidArray(nil)
	_ pgtype.Int64Valuer = (*int8Elem)(nil)
	_ pgtype.TextValuer  = (*textElem)(nil)
	_ pgtype.UUIDValuer  = (*uuidElem)(nil)
)

// dims returns the dimensions of a one-dimensional array of n elements; nil
// (NULL) is never sent, so n is not checked against it.
func dims(n int) []pgtype.ArrayDimension {
	return []pgtype.ArrayDimension{{Length: int32(n), LowerBound: 1}}
}

// Dimensions implements pgtype.ArrayGetter.
func (a int8Array) Dimensions() []pgtype.ArrayDimension { return dims(len(a)) }

// Index implements pgtype.ArrayGetter.
func (a int8Array) Index(i int) any { return (*int8Elem)(&a[i]) }

// IndexType implements pgtype.ArrayGetter.
func (a int8Array) IndexType() any { return (*int8Elem)(nil) }

// Dimensions implements pgtype.ArrayGetter.
func (a textArray) Dimensions() []pgtype.ArrayDimension { return dims(len(a)) }

// Index implements pgtype.ArrayGetter.
func (a textArray) Index(i int) any { return (*textElem)(&a[i]) }

// IndexType implements pgtype.ArrayGetter.
func (a textArray) IndexType() any { return (*textElem)(nil) }

// Dimensions implements pgtype.ArrayGetter.
func (a uuidArray) Dimensions() []pgtype.ArrayDimension { return dims(len(a)) }

// Index implements pgtype.ArrayGetter.
func (a uuidArray) Index(i int) any { return (*uuidElem)(&a[i]) }

// IndexType implements pgtype.ArrayGetter.
func (a uuidArray) IndexType() any { return (*uuidElem)(nil) }

// Int64Value implements pgtype.Int64Valuer.
func (e *int8Elem) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: int64(*e), Valid: true}, nil
}

// TextValue implements pgtype.TextValuer.
func (e *textElem) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*e), Valid: true}, nil
}

// UUIDValue implements pgtype.UUIDValuer.
func (e *uuidElem) UUIDValue() (pgtype.UUID, error) {
	return pgtype.UUID{Bytes: *e, Valid: true}, nil
}

// appendCols holds the columns of one append, reused between units of work
// through appendColsPool: with them, an append allocates little more than
// pgx's own buffers, however many events it has.
type appendCols struct {
	order, k              []int
	idxs, bases, ks       int8Array
	streams, types, datas textArray
	ids                   uuidArray
	rnd                   []byte
	seen                  map[string]int64
	json                  bytes.Buffer  // the payloads, one after the other
	enc                   *json.Encoder // writes to json
	ends                  []int         // where each payload ends in json
	params                []byte        // the parameters, encoded by sendAppendRaw
	vals                  [][]byte      // each parameter's piece of params
	stmtSQL, stmtName     string        // the last append statement and its name
}

// maxPooledEvents bounds the appends whose columns go back to the pool, so
// that a rare huge unit of work does not pin its memory for good.
const maxPooledEvents = 4096

var appendColsPool = sync.Pool{New: func() any {
	c := &appendCols{seen: make(map[string]int64)}
	c.enc = json.NewEncoder(&c.json)
	return c
}}

// getAppendCols returns columns for n events, each of length n.
func getAppendCols(n int) *appendCols {
	c := appendColsPool.Get().(*appendCols)
	c.order, c.k = resize(c.order, n), resize(c.k, n)
	c.idxs, c.bases, c.ks = resize(c.idxs, n), resize(c.bases, n), resize(c.ks, n)
	c.streams, c.types, c.datas = resize(c.streams, n), resize(c.types, n), resize(c.datas, n)
	c.ids, c.rnd = resize(c.ids, n), resize(c.rnd, 16*n)
	c.ends = c.ends[:0]
	c.json.Reset()
	return c
}

// putAppendCols returns c to the pool, without the strings it refers to.
func putAppendCols(c *appendCols) {
	if cap(c.order) > maxPooledEvents || c.json.Cap() > 64*maxPooledEvents || cap(c.params) > 256*maxPooledEvents {
		return
	}
	clear(c.streams)
	clear(c.types)
	clear(c.datas)
	clear(c.seen)
	c.json.Reset()
	appendColsPool.Put(c)
}

// resize returns s with length n, reusing its array when it is big enough.
// The elements are not cleared: every caller sets all n.
func resize[S ~[]E, E any](s S, n int) S {
	if cap(s) < n {
		return make(S, n)
	}
	return s[:n]
}

// knownTypes is the set of event type names that the registry has encoded
// once: a registry never forgets a type, so they need no second check. It
// is read without a lock and replaced, rarely, by a copy.
type knownTypes struct {
	mu  sync.Mutex
	set atomic.Pointer[map[string]struct{}]
}

func (k *knownTypes) has(typ string) bool {
	m := k.set.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[typ]
	return ok
}

func (k *knownTypes) add(typ string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.set.Load()
	m := make(map[string]struct{}, 1)
	if old != nil {
		if _, ok := (*old)[typ]; ok {
			return
		}
		m = make(map[string]struct{}, len(*old)+1)
		for name := range *old {
			m[name] = struct{}{}
		}
	}
	m[typ] = struct{}{}
	k.set.Store(&m)
}

// encodePayload appends e's JSON to c.json, followed by a newline, and
// where the JSON ends to c.ends. The registry decides which types may be
// recorded and encodes the first payload of each type (of a Store; checked
// skips even the look-up, for a type just seen); the others are encoded
// here as the registry does, as json.Marshal writes them, but into one
// buffer, without allocations of their own.
func (s *Store) encodePayload(c *appendCols, e event.Event, typ string, checked bool) error {
	if !checked && !s.types.has(typ) {
		b, err := s.reg.Marshal(e)
		if err != nil {
			return err
		}
		c.json.Write(b)
		c.ends = append(c.ends, c.json.Len())
		c.json.WriteByte('\n')
		s.types.add(typ)
		return nil
	}
	// Encode writes what json.Marshal returns and a newline, and nothing
	// when it fails.
	if err := c.enc.Encode(e); err != nil {
		return fmt.Errorf("event: encode %q: %w", typ, err)
	}
	c.ends = append(c.ends, c.json.Len()-1)
	return nil
}
