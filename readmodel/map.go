package readmodel

import (
	"context"
	"hash/maphash"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/cqrskit/cqrs/store"
)

// Map layout, and why.
//
// A read-model lookup must cost about a map lookup, allocate nothing, scale
// across cores, and never wait for a writer. A Go map under a sync.RWMutex
// fails the last two: RLock writes the lock word, so readers on different
// cores fight over its cache line, and a waiting writer blocks new readers.
// sync.Map is lock-free but measured about twice as slow per Load at 100K
// keys (BenchmarkMapLoad).
//
// So each of the shardCount shards owns an open-addressing hash table
// (linear probing) that readers inspect with atomic loads only. A slot
// holds the key's hash and an atomic pointer to an immutable key/value
// pair:
//
//   - Storing a key's value allocates a new pair and publishes it with one
//     atomic store, so readers see the old pair or the new one, never a
//     mix. Keeping the key in the pair, next to the value, means a hit
//     touches one slot and one pair, and a slot is only 16 bytes.
//   - A claimed slot is never freed, because moving slots (backward-shift
//     deletion) would break concurrent probes. Deleting clears the low bit
//     of the slot's hash, which live hashes always have set, so readers
//     skip the slot, and swaps the pair for one holding only the key (so
//     the value can be collected), so that re-inserting the same key
//     revives the same slot. A key therefore has at most one slot per
//     table, which is what lets Range promise to visit a key only once.
//   - Growth, shrinking and tombstone purging build a new table and publish
//     it with one atomic store. A reader still probing the old table gets
//     a pair that was current when the new table was built, which is a
//     valid (linearizable) answer for a Load that overlapped the write.
//
// Writers of a shard are serialised by the shard's mutex, which readers
// never touch. The writer state lives on cache lines separate from the
// table pointers that readers load, so a busy writer does not evict them.

const (
	shardBits  = 6
	shardCount = 1 << shardBits // power of two: the shard is the hash's top bits

	// minTableSize is the smallest table a shard allocates. Tables are kept
	// at most 3/4 full (counting tombstones) so that probes stay short and
	// always end at an empty slot.
	minTableSize = 8
)

// Map is the in-memory [Store]: a concurrent hash map tuned for reads.
//
// Load (and Get) cost about a Go map lookup, allocate nothing, take no lock
// and write no shared memory, so they scale with cores and never wait for a
// writer. Put, Update and Delete lock only the shard that owns the key, and
// replacing the value of an existing key is a single atomic store that
// readers observe either entirely or not at all.
//
// Values are shared with readers without copying, so they must be treated
// as immutable: after Put (or after returning it from an Update function),
// never modify a value, nor the backing array of a slice or the contents of
// a map inside it. Build a new value instead; [RunningAverage] and [Recent]
// are designed for that.
//
// A Map must be created with [NewMap] and must not be copied after first
// use.
type Map[K comparable, V any] struct {
	seed   maphash.Seed
	tables [shardCount]atomic.Pointer[table[K, V]] // read by every Load
	_      [64]byte                                // keep writer state off the readers' cache lines
	shards [shardCount]shard                       // writer state, one padded struct per shard
}

// shard is the writer-side state of one shard.
type shard struct {
	mu   sync.Mutex   // serialises the shard's writers; readers never take it
	live atomic.Int64 // keys with a value; written under mu, read by Len without it
	used int          // claimed slots (live keys plus tombstones); guarded by mu
	_    [40]byte     // pad to a cache line so neighbouring shards' writers do not contend
}

type table[K comparable, V any] struct {
	mask    uint64 // len(entries)-1; len(entries) is a power of two
	entries []entry[K, V]
}

type entry[K comparable, V any] struct {
	hash atomic.Uint64              // 0: free; odd: live; even: deleted (a tombstone)
	kv   atomic.Pointer[pair[K, V]] // set before hash, so never nil in a claimed slot
}

// pair is an immutable key and value; replacing a value replaces the pair.
type pair[K comparable, V any] struct {
	key K
	val V
}

// Interface check: Map is the reference Store.
var _ Store[string, int] = (*Map[string, int])(nil)

// NewMap returns an empty Map.
func NewMap[K comparable, V any]() *Map[K, V] {
	m := new(Map[K, V])
	m.init()
	return m
}

// init prepares a Map embedded by value in another type of this package.
func (m *Map[K, V]) init() { m.seed = maphash.MakeSeed() }

// hash returns the key's hash with its low bit set, as live slots store it.
func (m *Map[K, V]) hash(key K) uint64 {
	return maphash.Comparable(m.seed, key) | 1
}

// tombstone returns how a slot holding a deleted key with hash h stores
// it: even, and not 0, which marks a free slot.
func tombstone(h uint64) uint64 {
	if h == 1 {
		return 2
	}
	return h &^ 1
}

// home returns the first slot to probe for hash h. It skips the low bit,
// which marks liveness, and the top bits, which chose the shard.
func (t *table[K, V]) home(h uint64) uint64 { return (h >> 1) & t.mask }

// find returns the pair stored under key, or nil.
func (t *table[K, V]) find(h uint64, key K) *pair[K, V] {
	for i := t.home(h); ; i = (i + 1) & t.mask {
		e := &t.entries[i]
		switch e.hash.Load() {
		case 0:
			return nil // keys are never stored past a free slot
		case h:
			if p := e.kv.Load(); p.key == key {
				return p
			}
		}
	}
}

// Load returns the value stored under key and whether it was present.
// It never blocks and does not allocate.
func (m *Map[K, V]) Load(key K) (v V, ok bool) {
	// Load is kept small enough to be inlined: the caller then reads the
	// fields it uses straight from the pair. Returned from a call, V goes
	// through a stack temporary, which measured 40% slower on a hit.
	if p := m.lookup(key); p != nil {
		return p.val, true
	}
	return v, false
}

// lookup returns the pair stored under key, or nil.
func (m *Map[K, V]) lookup(key K) *pair[K, V] {
	h := m.hash(key)
	if t := m.tables[h>>(64-shardBits)].Load(); t != nil {
		return t.find(h, key)
	}
	return nil
}

// Ref is where [Map.LoadRef] found a key's value, for [Map.StoreRef] to
// replace that value without hashing the key or searching the table again.
// The zero Ref stands for a key that was not found.
type Ref[K comparable, V any] struct {
	h uint64
	t *table[K, V]
	e *entry[K, V]
	p *pair[K, V]
}

// LoadRef is [Map.Load] that also returns where the value was found, for
// a later StoreRef of the same key: a read-modify-write, such as a
// projection staging a view, then searches the table once.
func (m *Map[K, V]) LoadRef(key K) (v V, ref Ref[K, V], ok bool) {
	h := m.hash(key)
	t := m.tables[h>>(64-shardBits)].Load()
	if t == nil {
		return v, ref, false
	}
	for i := t.home(h); ; i = (i + 1) & t.mask {
		e := &t.entries[i]
		switch e.hash.Load() {
		case 0:
			return v, ref, false
		case h:
			if p := e.kv.Load(); p.key == key {
				return p.val, Ref[K, V]{h: h, t: t, e: e, p: p}, true
			}
		}
	}
}

// StoreRef stores v under key, as Put does, given ref from LoadRef(key) on
// m. If key still holds the value LoadRef returned (nothing stored or
// deleted it, and its shard's table was not rebuilt, since), the store is
// one atomic pointer store under the shard's lock, with no hashing and no
// search; otherwise, or for the zero Ref, it is a Put.
func (m *Map[K, V]) StoreRef(ref Ref[K, V], key K, v V) {
	p := &pair[K, V]{key, v} // allocate before taking the lock
	if ref.e == nil || ref.p.key != key {
		m.storePair(p)
		return
	}
	si := ref.h >> (64 - shardBits)
	s := &m.shards[si]
	s.mu.Lock()
	if m.tables[si].Load() == ref.t && ref.e.kv.Load() == ref.p {
		// A live slot: a delete would have swapped in a key-only pair,
		// and a later store a new pair.
		ref.e.kv.Store(p)
	} else {
		m.setLocked(si, ref.h, m.slotLocked(si, ref.h, key), p)
	}
	s.mu.Unlock()
}

// Get implements [Store]. It returns [store.ErrNotFound] when key is
// absent. Map never blocks, so it ignores ctx.
func (m *Map[K, V]) Get(_ context.Context, key K) (V, error) {
	v, ok := m.Load(key)
	if !ok {
		return v, store.ErrNotFound
	}
	return v, nil
}

// Put implements [Store]: it stores v under key and always returns nil.
// Map never blocks on readers, so it ignores ctx.
func (m *Map[K, V]) Put(_ context.Context, key K, v V) error {
	m.store(key, v)
	return nil
}

// store is Put without the Store interface's context and error.
func (m *Map[K, V]) store(key K, v V) {
	m.storePair(&pair[K, V]{key, v}) // allocate before taking the lock
}

// storePair stores p, a new pair, under its key.
func (m *Map[K, V]) storePair(p *pair[K, V]) {
	key := p.key
	h := m.hash(key)
	si := h >> (64 - shardBits)
	s := &m.shards[si]
	s.mu.Lock()
	m.setLocked(si, h, m.slotLocked(si, h, key), p)
	s.mu.Unlock()
}

// reserve grows each shard's table, if smaller, to hold its share of n
// keys (with room for an uneven spread) without rebuilding as they are
// stored: a bulk load of n keys then builds each table once.
func (m *Map[K, V]) reserve(n int) {
	want := n/shardCount + n/(4*shardCount) + 8
	for si := range m.shards {
		s := &m.shards[si]
		s.mu.Lock()
		if t := m.tables[si].Load(); t == nil || len(t.entries) < 2*want {
			m.rebuildLocked(uint64(si), t, want)
		}
		s.mu.Unlock()
	}
}

// storeNew stores v under key if key is absent, and reports whether it
// did.
func (m *Map[K, V]) storeNew(key K, v V) bool {
	h := m.hash(key)
	si := h >> (64 - shardBits)
	s := &m.shards[si]
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := m.slotLocked(si, h, key)
	if sl.live != nil {
		return false
	}
	m.setLocked(si, h, sl, &pair[K, V]{key, v})
	return true
}

// Delete implements [Store]: it removes key and always returns nil,
// including when key is absent. It ignores ctx.
func (m *Map[K, V]) Delete(_ context.Context, key K) error {
	m.remove(key)
	return nil
}

// remove is Delete without the Store interface's context and error.
func (m *Map[K, V]) remove(key K) {
	h := m.hash(key)
	si := h >> (64 - shardBits)
	s := &m.shards[si]
	s.mu.Lock()
	if sl := m.slotLocked(si, h, key); sl.live != nil {
		m.deleteLocked(si, h, sl.live)
	}
	s.mu.Unlock()
}

// Update atomically replaces the value under key with the result of fn.
// fn maps the current entry to the new one in the comma-ok form of Load:
// it receives the current value and whether the key is present, and
// returns the new value and whether the key is present afterwards, so
// returning false deletes the key (or leaves it absent). Updates of the same key are serialised, so a read-modify-write
// in fn never loses a concurrent update; readers are not blocked and see
// the old value until fn returns.
//
// fn runs with the shard locked: it must be quick, must not call methods of
// m (that may deadlock), and must not modify old; return a new value
// instead. If fn panics, m is left unchanged.
func (m *Map[K, V]) Update(key K, fn func(old V, ok bool) (V, bool)) {
	m.update(key, func(old V, ok bool) (V, updateOp) {
		v, keep := fn(old, ok)
		if keep {
			return v, opStore
		}
		return v, opDelete
	})
}

// Modify changes key's value through a copy, in place: it calls fn with a
// pointer to the current value and a pointer to the new value, which
// starts as a copy of it, then stores the new value. Readers see the old
// value until then. Modify reports whether key was present; if not, fn is
// not called and nothing is stored. Unlike Update, the new value is built
// where the Map keeps it, so it is copied once and, since it is already on
// the heap, fn may take its address without making a copy escape.
//
// fn runs with the shard locked, under the rules of Update: it must be
// quick, must not call methods of m, and must not modify *old. If fn
// panics, m is left unchanged.
func (m *Map[K, V]) Modify(key K, fn func(old, v *V)) bool {
	h := m.hash(key)
	si := h >> (64 - shardBits)
	s := &m.shards[si]
	s.mu.Lock()
	defer s.mu.Unlock() // fn is caller code and may panic
	sl := m.slotLocked(si, h, key)
	if sl.live == nil {
		return false
	}
	old := sl.live.kv.Load()
	p := &pair[K, V]{key, old.val}
	fn(&old.val, &p.val)
	sl.live.kv.Store(p)
	return true
}

// updateOp is what an internal update function asks the Map to do.
type updateOp uint8

const (
	opNone   updateOp = iota // leave the key as it is (saves an allocation when nothing changed)
	opStore                  // store the returned value
	opDelete                 // delete the key
)

func (m *Map[K, V]) update(key K, fn func(old V, ok bool) (V, updateOp)) {
	h := m.hash(key)
	si := h >> (64 - shardBits)
	s := &m.shards[si]
	s.mu.Lock()
	defer s.mu.Unlock() // fn is caller code and may panic

	sl := m.slotLocked(si, h, key)
	var old V
	if sl.live != nil {
		old = sl.live.kv.Load().val
	}
	v, op := fn(old, sl.live != nil)
	switch op {
	case opStore:
		m.setLocked(si, h, sl, &pair[K, V]{key, v})
	case opDelete:
		if sl.live != nil {
			m.deleteLocked(si, h, sl.live)
		}
	}
}

// slot is where a key is, or was, in a shard's current table.
type slot[K comparable, V any] struct {
	t    *table[K, V]
	live *entry[K, V] // the key's slot, if the key is present
	tomb *entry[K, V] // the key's slot, if the key was deleted from this table
}

// slotLocked finds key in shard si. The caller holds the shard's mutex.
func (m *Map[K, V]) slotLocked(si uint64, h uint64, key K) slot[K, V] {
	sl := slot[K, V]{t: m.tables[si].Load()}
	if sl.t == nil {
		return sl
	}
	dead := tombstone(h)
	for i := sl.t.home(h); ; i = (i + 1) & sl.t.mask {
		e := &sl.t.entries[i]
		switch e.hash.Load() {
		case 0:
			return sl
		case h:
			if e.kv.Load().key == key {
				sl.live = e
				return sl
			}
		case dead:
			if e.kv.Load().key == key {
				sl.tomb = e
				return sl
			}
		}
	}
}

// setLocked stores p (whose key hashes to h) in the slot found by
// slotLocked: replacing the pair of a live key, reviving the key's
// tombstone, or claiming a free slot, growing the table first if it is
// too full.
func (m *Map[K, V]) setLocked(si uint64, h uint64, sl slot[K, V], p *pair[K, V]) {
	if sl.live != nil {
		sl.live.kv.Store(p) // replacing a value: one atomic store
		return
	}
	s := &m.shards[si]
	s.live.Add(1)
	if sl.tomb != nil {
		sl.tomb.kv.Store(p) // the pair first: a reader that sees the live hash must find p
		sl.tomb.hash.Store(h)
		return
	}
	t := sl.t
	if t == nil || (s.used+1)*4 > len(t.entries)*3 {
		t = m.rebuildLocked(si, t, int(s.live.Load()))
	}
	for i := t.home(h); ; i = (i + 1) & t.mask {
		if e := &t.entries[i]; e.hash.Load() == 0 {
			e.kv.Store(p)
			e.hash.Store(h) // publishes the slot
			s.used++
			return
		}
	}
}

// deleteLocked turns the live slot e of a key with hash h into a
// tombstone, and shrinks the shard's table when it has become mostly
// empty.
func (m *Map[K, V]) deleteLocked(si uint64, h uint64, e *entry[K, V]) {
	e.hash.Store(tombstone(h)) // readers skip the slot from here on
	// Keep the key, for reviving the slot, but let the value be collected.
	// A reader that loaded the live hash just before may still get the old
	// pair, which is fine: its Load overlapped the Delete.
	e.kv.Store(&pair[K, V]{key: e.kv.Load().key})
	live := m.shards[si].live.Add(-1)
	if t := m.tables[si].Load(); len(t.entries) > minTableSize && live*8 < int64(len(t.entries)) {
		m.rebuildLocked(si, t, int(live))
	}
}

// rebuildLocked publishes a new table for shard si sized for want live
// keys (at most half full), holding the live keys of old and no tombstones.
func (m *Map[K, V]) rebuildLocked(si uint64, old *table[K, V], want int) *table[K, V] {
	size := minTableSize
	for size < 2*want {
		size <<= 1
	}
	t := &table[K, V]{mask: uint64(size - 1), entries: make([]entry[K, V], size)}
	n := 0
	if old != nil {
		for i := range old.entries {
			oe := &old.entries[i]
			h := oe.hash.Load()
			if h&1 == 0 {
				continue // free slot or tombstone
			}
			p := oe.kv.Load()
			j := t.home(h)
			for t.entries[j].hash.Load() != 0 {
				j = (j + 1) & t.mask
			}
			t.entries[j].kv.Store(p)
			t.entries[j].hash.Store(h)
			n++
		}
	}
	m.shards[si].used = n
	m.tables[si].Store(t)
	return t
}

// Len returns the number of keys. Concurrent writes may or may not be
// counted.
func (m *Map[K, V]) Len() int {
	n := int64(0)
	for i := range m.shards {
		n += m.shards[i].live.Load()
	}
	return int(n)
}

// Range calls fn for each key and value until fn returns false.
//
// Range is weakly consistent, like sync.Map's: it holds no lock and does
// not block writers, it visits no key twice, and it visits every key that
// is present and unchanged for the whole call; a key stored, replaced or
// deleted concurrently may be visited with any of the values it had during
// the call, or not at all. The order is unspecified. fn may call any
// method of m.
func (m *Map[K, V]) Range(fn func(key K, v V) bool) {
	m.rangePairs(func(p *pair[K, V]) bool { return fn(p.key, p.val) })
}

// rangePairs calls fn with each live pair until fn returns false.
func (m *Map[K, V]) rangePairs(fn func(p *pair[K, V]) bool) {
	for si := range m.tables {
		t := m.tables[si].Load()
		if t == nil {
			continue
		}
		for i := range t.entries {
			e := &t.entries[i]
			if e.hash.Load()&1 == 0 {
				continue // free slot or tombstone
			}
			if !fn(e.kv.Load()) {
				return
			}
		}
	}
}

// All returns an iterator over the keys and values, with the same weak
// consistency as [Map.Range].
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) { m.Range(yield) }
}

// Clear removes every key. It locks one shard at a time, so a reader
// running concurrently may see some shards cleared and others not yet.
func (m *Map[K, V]) Clear() {
	for si := range m.shards {
		s := &m.shards[si]
		s.mu.Lock()
		m.tables[si].Store(nil)
		s.live.Store(0)
		s.used = 0
		s.mu.Unlock()
	}
}

// MapBuilder fills a new [Map] before any reader can see it, such as the
// views a rebuild replays the log into. Its values are changed in place:
// Put and Value return a pointer to the value the Map holds, so a value
// that many events change costs one allocation and no copies, where a
// published Map needs a new value for every change. Map ends the build.
//
// A MapBuilder is not safe for concurrent use, and the pointers it returns
// must not be used after Map.
type MapBuilder[K comparable, V any] struct {
	m *Map[K, V]
}

// NewMapBuilder returns a builder of an empty Map.
func NewMapBuilder[K comparable, V any]() *MapBuilder[K, V] {
	return &MapBuilder[K, V]{m: NewMap[K, V]()}
}

// Put stores v under key and returns a pointer to the stored value. A
// pointer returned earlier for key no longer points to key's value.
func (b *MapBuilder[K, V]) Put(key K, v V) *V {
	p := &pair[K, V]{key, v}
	b.m.storePair(p)
	return &p.val
}

// Value returns a pointer to the value stored under key, nil if key is
// absent.
func (b *MapBuilder[K, V]) Value(key K) *V {
	if p := b.m.lookup(key); p != nil {
		return &p.val
	}
	return nil
}

// Len returns the number of keys.
func (b *MapBuilder[K, V]) Len() int { return b.m.Len() }

// Range calls fn with each key and a pointer to its value, in no
// particular order, until fn returns false. fn may change the value but
// must not call Put.
func (b *MapBuilder[K, V]) Range(fn func(key K, v *V) bool) {
	b.m.rangePairs(func(p *pair[K, V]) bool { return fn(p.key, &p.val) })
}

// Map ends the build and returns the Map, holding the values as they are
// now. Publish it to readers with a synchronising operation (an atomic
// store, a channel send), as any value handed to other goroutines; the
// builder must not be used again.
func (b *MapBuilder[K, V]) Map() *Map[K, V] {
	m := b.m
	b.m = nil
	return m
}
