package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"unsafe"
)

// RowTx is the byte-level row interface that the Tx of a durable store
// implements so that typed tables work on it. Table names and keys are
// strings; values are JSON. version 0 means "absent". Implementations report
// *ConflictError and *NotFoundError (or errors matching ErrConflict and
// ErrNotFound).
type RowTx interface {
	// GetRow returns the row's bytes and version, or ErrNotFound.
	GetRow(ctx context.Context, table, key string) (data []byte, version uint64, err error)
	// PutRow inserts or replaces the row and returns its new version.
	PutRow(ctx context.Context, table, key string, data []byte) (uint64, error)
	// PutRowIf writes the row only if its current version equals expected
	// (0: the row must not exist); otherwise it fails with a
	// *ConflictError whose Actual is the version found. The check and the
	// write are atomic. It returns the new version.
	PutRowIf(ctx context.Context, table, key string, data []byte, expected uint64) (uint64, error)
	// DeleteRow removes the row, or fails with ErrNotFound.
	DeleteRow(ctx context.Context, table, key string) error
}

// Table is a typed, normalized table of the write model with versioned rows.
// Its methods run inside a unit of work (a Tx from Store.Update): writes are
// rolled back with the unit of work and become visible to others only when it
// commits. On Memory the rows are native Go values; on a durable store whose
// Tx implements RowTx they are stored as JSON.
//
// # Rows are the same on every store
//
// A program must see the same rows whatever the store, so V is limited to
// what JSON round-trips faithfully: NewTable inspects V once and every
// method of a table whose V contains an unexported field, a field tagged
// json:"-", an interface, a func, a chan or a complex number, or a map whose
// keys are not strings or integers, returns a *InvalidError (ErrInvalid).
// A type that implements both json.Marshaler and json.Unmarshaler (on its
// pointer), such as time.Time, is trusted to round-trip and not looked into.
// At every write, non-finite floats (NaN, ±Inf) and strings that PostgreSQL
// text cannot hold (a NUL byte, invalid UTF-8) are refused the same way, on
// every store; the fields to check are worked out from the type once, so a
// row without strings or floats costs nothing and a flat struct costs a
// pass over its string fields.
//
// # Keys
//
// Keys of a string kind are used as they are, so they must be valid UTF-8
// without NUL bytes. Other keys are encoded as their JSON (-7, {"A":"x",
// "B":"y"}), which is unambiguous for numbers, booleans, arrays and structs
// of them; K must not contain pointers, interfaces, slices or maps, and a
// struct key follows the rules for rows above. Error values (NotFoundError,
// ConflictError, AlreadyExistsError) name keys in this encoding on every
// store, and durable stores store them under it.
//
// # Copies
//
// Values are copied in and out, so a handler may modify what Get returns,
// and what it passed to Put, without touching the stored row; if the unit
// of work then fails, nothing it did remains. For a V without pointers,
// slices or maps a copy is a plain assignment. Otherwise Memory copies
// deeply on Get and on Put: with V's Clone method when V has one
//
//	func (v V) Clone() V // returns a value that shares no mutable memory with v
//
// and with a reflection-based deep copy (several times slower, see the
// store benchmarks) when it has not. Durable stores copy by encoding.
type Table[K comparable, V any] struct {
	name  string
	rows  tableRows[K, V] // *memTable on Memory, *byteRows on any other store
	kinfo *typeInfo
	vinfo *typeInfo
	terr  error // the key or row type is refused
}

// tableRows is where a table's rows live: every Table method checks its
// arguments and then takes this one path. Memory keeps native values
// (memTable, in memtable.go); other stores go through their Tx's RowTx
// (byteRows). NewTable picks the implementation once, so the hot path has
// no per-call type switch beyond the Tx check inside it.
type tableRows[K comparable, V any] interface {
	get(tx Tx, key K) (V, uint64, error)
	put(tx Tx, key K, v V, cond putCond, expected uint64) (uint64, error)
	delete(tx Tx, key K) error
}

// putCond is the condition a write is subject to.
type putCond uint8

const (
	putAlways    putCond = iota // Put
	putIfVersion                // PutIf: the current version must equal expected
	putIfAbsent                 // Insert: the row must not exist
)

// NewTable declares a table named name in s. On Memory it panics if the name
// is already taken, because two handles over one table name is a wiring bug.
// A key or row type that stores cannot hold faithfully (see Table) makes
// every method of the table return a *InvalidError.
func NewTable[K comparable, V any](s Store, name string) *Table[K, V] {
	t := &Table[K, V]{name: name}
	t.kinfo = analyze(reflect.TypeFor[K](), true)
	t.vinfo = analyze(reflect.TypeFor[V](), false)
	switch {
	case t.kinfo.err != "":
		t.terr = &InvalidError{What: name + " key type " + reflect.TypeFor[K]().String(), Reason: t.kinfo.err}
	case t.vinfo.err != "":
		t.terr = &InvalidError{What: name + " row type " + reflect.TypeFor[V]().String(), Reason: t.vinfo.err}
	}
	if m, ok := s.(*Memory); ok {
		t.rows = newMemTable(m, t)
	} else {
		t.rows = &byteRows[K, V]{t: t}
	}
	return t
}

// keyString encodes a key: see Table.
func (t *Table[K, V]) keyString(k K) string {
	if t.kinfo.isText {
		return *(*string)(unsafe.Pointer(&k))
	}
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Sprint(k) // only for a key checkKey refuses
	}
	return string(b)
}

// checkKey returns the type's error, or a *InvalidError for a key no store
// can hold.
func (t *Table[K, V]) checkKey(k K) error {
	if t.terr != nil {
		return t.terr
	}
	r := checkFlat(t.kinfo.flat, unsafe.Pointer(&k))
	if r == "" && t.kinfo.check != nil {
		kk := k
		r = t.kinfo.check(reflect.ValueOf(&kk).Elem())
	}
	if r != "" {
		return &InvalidError{What: t.name + " key", Reason: r}
	}
	return nil
}

// checkRow returns a *InvalidError for a row no store can hold faithfully.
func (t *Table[K, V]) checkRow(k K, v V) error {
	r := checkFlat(t.vinfo.flat, unsafe.Pointer(&v))
	if r == "" && t.vinfo.check != nil {
		vv := v
		r = t.vinfo.check(reflect.ValueOf(&vv).Elem())
	}
	if r != "" {
		return &InvalidError{What: fmt.Sprintf("%s row %s", t.name, t.keyString(k)), Reason: r}
	}
	return nil
}

// Name returns the table name.
func (t *Table[K, V]) Name() string { return t.name }

// Get returns the row and its version (>= 1), or a *NotFoundError. It
// returns a *InvalidError for a key no store can hold (see Table).
func (t *Table[K, V]) Get(tx Tx, key K) (V, uint64, error) {
	if err := t.checkKey(key); err != nil {
		var zero V
		return zero, 0, err
	}
	return t.rows.get(tx, key)
}

// Exists reports whether the row exists.
func (t *Table[K, V]) Exists(tx Tx, key K) (bool, error) {
	_, _, err := t.Get(tx, key)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return false, err
}

// Put inserts or replaces the row and returns its new version. It returns
// a *InvalidError for a key or row no store can hold (see Table).
func (t *Table[K, V]) Put(tx Tx, key K, v V) (uint64, error) {
	return t.put(tx, key, v, putAlways, 0)
}

// PutIf writes the row only if its current version is expected (0: the row
// must not exist yet); otherwise it returns a *ConflictError, also when
// expected is 0 and the row exists: PutIf is a version check, which a
// retry after re-reading may pass. Use Insert to create a row that must be
// new.
func (t *Table[K, V]) PutIf(tx Tx, key K, v V, expected uint64) (uint64, error) {
	return t.put(tx, key, v, putIfVersion, expected)
}

// Insert writes a new row, or returns a *AlreadyExistsError
// (ErrAlreadyExists, not ErrConflict) if it exists: a duplicate is
// permanent, and retry-on-conflict middleware does not re-run it.
func (t *Table[K, V]) Insert(tx Tx, key K, v V) error {
	_, err := t.put(tx, key, v, putIfAbsent, 0)
	return err
}

func (t *Table[K, V]) put(tx Tx, key K, v V, cond putCond, expected uint64) (uint64, error) {
	if err := t.checkKey(key); err != nil {
		return 0, err
	}
	if err := t.checkRow(key, v); err != nil {
		return 0, err
	}
	return t.rows.put(tx, key, v, cond, expected)
}

// Delete removes the row, or returns a *NotFoundError.
func (t *Table[K, V]) Delete(tx Tx, key K) error {
	if err := t.checkKey(key); err != nil {
		return err
	}
	return t.rows.delete(tx, key)
}

func (t *Table[K, V]) notFound(key K) error {
	return &NotFoundError{What: t.name, Key: t.keyString(key)}
}

// byteRows stores a table's rows as JSON through the RowTx that the Tx of a
// durable store implements.
type byteRows[K comparable, V any] struct{ t *Table[K, V] }

func (b *byteRows[K, V]) rowTx(tx Tx) RowTx {
	rt, ok := tx.(RowTx)
	if !ok {
		panic(fmt.Sprintf("store: table %q: unit of work %T does not implement store.RowTx", b.t.name, tx))
	}
	return rt
}

func (b *byteRows[K, V]) get(tx Tx, key K) (V, uint64, error) {
	var v V
	ks := b.t.keyString(key)
	data, ver, err := b.rowTx(tx).GetRow(tx.Context(), b.t.name, ks)
	if err != nil {
		return v, 0, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, 0, fmt.Errorf("store: decode %s row %s: %w", b.t.name, ks, err)
	}
	return v, ver, nil
}

func (b *byteRows[K, V]) put(tx Tx, key K, v V, cond putCond, expected uint64) (uint64, error) {
	ks := b.t.keyString(key)
	data, err := json.Marshal(v)
	if err != nil {
		return 0, &InvalidError{What: fmt.Sprintf("%s row %s", b.t.name, ks), Reason: "cannot encode it as JSON", Err: err}
	}
	rt := b.rowTx(tx)
	if cond == putAlways {
		return rt.PutRow(tx.Context(), b.t.name, ks, data)
	}
	ver, err := rt.PutRowIf(tx.Context(), b.t.name, ks, data, expected)
	var ce *ConflictError
	if cond == putIfAbsent && errors.As(err, &ce) && ce.Expected == 0 && ce.Actual != 0 {
		return 0, &AlreadyExistsError{Table: b.t.name, Key: ks}
	}
	return ver, err
}

func (b *byteRows[K, V]) delete(tx Tx, key K) error {
	return b.rowTx(tx).DeleteRow(tx.Context(), b.t.name, b.t.keyString(key))
}
