package store

import (
	"fmt"
	"reflect"
)

// memTable holds one table's rows on Memory as native Go values. It is the
// Memory implementation of tableRows and is guarded by the owning Memory's
// writer lock.
type memTable[K comparable, V any] struct {
	t     *Table[K, V]
	s     *Memory
	rows  map[K]row[V]
	undo  []undoRec[K, V]
	inTx  bool
	clone func(V) V // nil when a plain assignment copies V
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

// cloner is the optional Clone method of a row type; see Table.
type cloner[V any] interface{ Clone() V }

// newMemTable declares t in m; it panics if the name is already taken,
// because two handles over one table name is a wiring bug.
func newMemTable[K comparable, V any](m *Memory, t *Table[K, V]) *memTable[K, V] {
	mt := &memTable[K, V]{t: t, s: m, rows: make(map[K]row[V])}
	if t.vinfo.refs {
		var zero V
		if _, ok := any(zero).(cloner[V]); ok {
			mt.clone = func(v V) V { return any(v).(cloner[V]).Clone() }
		} else {
			mt.clone = func(v V) V {
				deepCopy(reflect.ValueOf(&v).Elem())
				return v
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tables[t.name] {
		panic(fmt.Sprintf("store: table %q declared twice", t.name))
	}
	m.tables[t.name] = true
	return mt
}

// use returns tx as a unit of work of this table's store, or panics: a
// table used with another store's Tx, or after its Update returned, is a
// wiring bug.
func (m *memTable[K, V]) use(tx Tx) *memTx {
	mt, ok := tx.(*memTx)
	if !ok || mt.s != m.s {
		panic(fmt.Sprintf("store: table %q used with a unit of work of another store", m.t.name))
	}
	mt.check()
	return mt
}

func (m *memTable[K, V]) get(tx Tx, key K) (V, uint64, error) {
	m.use(tx)
	r, ok := m.rows[key]
	if !ok {
		var zero V
		return zero, 0, m.t.notFound(key)
	}
	if m.clone != nil {
		return m.clone(r.val), r.ver, nil
	}
	return r.val, r.ver, nil
}

func (m *memTable[K, V]) put(tx Tx, key K, v V, cond putCond, expected uint64) (uint64, error) {
	mt := m.use(tx)
	old, existed := m.rows[key]
	switch {
	case cond == putIfAbsent && existed:
		return 0, &AlreadyExistsError{Table: m.t.name, Key: m.t.keyString(key)}
	case cond == putIfVersion && old.ver != expected:
		return 0, &ConflictError{Table: m.t.name, Key: m.t.keyString(key), Expected: expected, Actual: old.ver}
	}
	if m.clone != nil {
		v = m.clone(v)
	}
	m.join(mt)
	m.undo = append(m.undo, undoRec[K, V]{key: key, old: old, existed: existed})
	nv := old.ver + 1
	m.rows[key] = row[V]{val: v, ver: nv}
	return nv, nil
}

func (m *memTable[K, V]) delete(tx Tx, key K) error {
	mt := m.use(tx)
	old, existed := m.rows[key]
	if !existed {
		return m.t.notFound(key)
	}
	m.join(mt)
	m.undo = append(m.undo, undoRec[K, V]{key: key, old: old, existed: true})
	delete(m.rows, key)
	return nil
}

// join makes the table a participant of the unit of work on its first write.
func (m *memTable[K, V]) join(tx *memTx) {
	if !m.inTx {
		m.inTx = true
		tx.s.touched = append(tx.s.touched, m)
	}
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
