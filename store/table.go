package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// RowTx is the byte-level row interface that the Tx of a durable store
// implements so that typed tables work on it. Table names and keys are
// strings; values are JSON. version 0 means "absent". Implementations report
// *ConflictError and *NotFoundError (or errors matching ErrConflict and
// ErrNotFound).
type RowTx interface {
	// GetRow returns the row's bytes and version, or ErrNotFound.
	GetRow(ctx context.Context, table, key string) (data []byte, version uint64, err error)
	// PutRow writes the row. With check, it fails with a conflict unless the
	// current version equals expected (0: the row must not exist). It
	// returns the new version.
	PutRow(ctx context.Context, table, key string, data []byte, check bool, expected uint64) (uint64, error)
	// DeleteRow removes the row, or fails with ErrNotFound.
	DeleteRow(ctx context.Context, table, key string) error
}

// Table is a typed, normalized table of the write model with versioned rows.
// Its methods run inside a unit of work (a Tx from Store.Update): writes are
// rolled back with the unit of work and become visible to others only when it
// commits. On Memory the rows are native Go values; on a durable store whose
// Tx implements RowTx they are stored as JSON.
//
// Values are copied in and out, so a handler may modify what Get returns
// without touching the stored row; a V holding slices or maps must not be
// mutated after Put, because the store keeps that memory.
type Table[K comparable, V any] struct {
	name string
	mem  *memTable[K, V] // set when the table lives in a Memory store
	s    Store
}

// NewTable declares a table named name in s. On Memory it panics if the name
// is already taken, because two handles over one table name is a wiring bug.
func NewTable[K comparable, V any](s Store, name string) *Table[K, V] {
	t := &Table[K, V]{name: name, s: s}
	if m, ok := s.(*Memory); ok {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.tables[name] {
			panic(fmt.Sprintf("store: table %q declared twice", name))
		}
		m.tables[name] = true
		t.mem = &memTable[K, V]{rows: make(map[K]row[V])}
	}
	return t
}

// Name returns the table name.
func (t *Table[K, V]) Name() string { return t.name }

// Get returns the row and its version (>= 1), or a *NotFoundError.
func (t *Table[K, V]) Get(tx Tx, key K) (V, uint64, error) {
	if mt := t.memTx(tx); mt != nil {
		r, ok := t.mem.rows[key]
		if !ok {
			var zero V
			return zero, 0, &NotFoundError{Table: t.name, Key: keyString(key)}
		}
		return r.val, r.ver, nil
	}
	rt := t.rowTx(tx)
	data, ver, err := rt.GetRow(tx.Context(), t.name, keyString(key))
	var v V
	if err != nil {
		return v, 0, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, 0, fmt.Errorf("store: decode %s row %v: %w", t.name, key, err)
	}
	return v, ver, nil
}

// Exists reports whether the row exists.
func (t *Table[K, V]) Exists(tx Tx, key K) (bool, error) {
	_, _, err := t.Get(tx, key)
	if err == nil {
		return true, nil
	}
	if IsNotFound(err) {
		return false, nil
	}
	return false, err
}

// Put inserts or replaces the row and returns its new version.
func (t *Table[K, V]) Put(tx Tx, key K, v V) (uint64, error) {
	return t.put(tx, key, v, false, 0)
}

// PutIf writes the row only if its current version is expected (0: the row
// must not exist yet); otherwise it returns a *ConflictError.
func (t *Table[K, V]) PutIf(tx Tx, key K, v V, expected uint64) (uint64, error) {
	return t.put(tx, key, v, true, expected)
}

// Insert writes a new row, or returns a *ConflictError if it exists.
func (t *Table[K, V]) Insert(tx Tx, key K, v V) error {
	_, err := t.put(tx, key, v, true, 0)
	return err
}

func (t *Table[K, V]) put(tx Tx, key K, v V, check bool, expected uint64) (uint64, error) {
	if mt := t.memTx(tx); mt != nil {
		old, existed := t.mem.rows[key]
		if check && old.ver != expected {
			return 0, &ConflictError{Table: t.name, Key: keyString(key), Expected: expected, Actual: old.ver}
		}
		mt.join(t.mem, &t.mem.inTx)
		t.mem.undo = append(t.mem.undo, undoRec[K, V]{key: key, old: old, existed: existed})
		nv := old.ver + 1
		t.mem.rows[key] = row[V]{val: v, ver: nv}
		return nv, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("store: encode %s row %v: %w", t.name, key, err)
	}
	return t.rowTx(tx).PutRow(tx.Context(), t.name, keyString(key), data, check, expected)
}

// Delete removes the row, or returns a *NotFoundError.
func (t *Table[K, V]) Delete(tx Tx, key K) error {
	if mt := t.memTx(tx); mt != nil {
		old, existed := t.mem.rows[key]
		if !existed {
			return &NotFoundError{Table: t.name, Key: keyString(key)}
		}
		mt.join(t.mem, &t.mem.inTx)
		t.mem.undo = append(t.mem.undo, undoRec[K, V]{key: key, old: old, existed: true})
		delete(t.mem.rows, key)
		return nil
	}
	return t.rowTx(tx).DeleteRow(tx.Context(), t.name, keyString(key))
}

func (t *Table[K, V]) memTx(tx Tx) *memTx {
	mt, ok := tx.(*memTx)
	if !ok {
		return nil
	}
	if t.mem == nil || mt.s != t.s {
		panic(fmt.Sprintf("store: table %q used with a unit of work of another store", t.name))
	}
	mt.check()
	return mt
}

func (t *Table[K, V]) rowTx(tx Tx) RowTx {
	rt, ok := tx.(RowTx)
	if !ok {
		panic(fmt.Sprintf("store: table %q: unit of work %T does not implement store.RowTx", t.name, tx))
	}
	return rt
}

func keyString[K comparable](k K) string {
	switch v := any(k).(type) {
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(k)
}

// IsNotFound reports whether err matches ErrNotFound. It is a shorthand for
// errors.Is with a fast path for the store's own *NotFoundError.
func IsNotFound(err error) bool {
	if _, ok := err.(*NotFoundError); ok {
		return true
	}
	return errors.Is(err, ErrNotFound)
}

// IsConflict reports whether err matches ErrConflict.
func IsConflict(err error) bool {
	if _, ok := err.(*ConflictError); ok {
		return true
	}
	return errors.Is(err, ErrConflict)
}

type row[V any] struct {
	val V
	ver uint64
}

type undoRec[K comparable, V any] struct {
	key     K
	old     row[V]
	existed bool
}

// memTable is guarded by the owning Memory's writer lock.
type memTable[K comparable, V any] struct {
	rows map[K]row[V]
	undo []undoRec[K, V]
	inTx bool
}

func (m *memTable[K, V]) rollback() {
	for i := len(m.undo) - 1; i >= 0; i-- {
		u := m.undo[i]
		if u.existed {
			m.rows[u.key] = u.old
		} else {
			delete(m.rows, u.key)
		}
	}
	m.reset()
}

func (m *memTable[K, V]) commit() { m.reset() }

func (m *memTable[K, V]) reset() {
	clear(m.undo)
	m.undo = m.undo[:0]
	m.inTx = false
}
