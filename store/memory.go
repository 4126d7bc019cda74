package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/internal/notify"
)

// Memory is the in-memory write store and event log. It is a first-class
// default, safe for concurrent use, not a test fake.
//
// Units of work are serialised: Update holds the store's writer lock while the
// handler runs, so handlers see a consistent state and commits are applied in
// the order of their positions, which are contiguous. Optimistic checks
// (Table.PutIf, Tx.ExpectVersion) still matter: they catch lost updates that
// span commands, such as a client that read version 3 and writes back later.
// Log readers never take the writer lock.
type Memory struct {
	mu      sync.Mutex // serialises units of work
	closed  atomic.Bool
	clock   func() time.Time
	streams map[string]*streamState
	tables  map[string]bool
	pending []pendingEvent // reused across units of work
	touched []participant  // tables written in the current unit of work
	recErr  error          // the first invalid Record of the current unit of work; it fails it
	log     memLog
	ids     idSource
	txs     []memTx // fresh units of work, handed out in order (see newTx)
}

var (
	_ StreamRecorder = (*memTx)(nil)
	_ Store          = (*Memory)(nil)
	_ Log            = (*Memory)(nil)
	_ Contiguous     = (*Memory)(nil)
)

// MemoryOption configures NewMemory.
type MemoryOption func(*Memory)

// WithClock sets the function that stamps commit times (default time.Now).
// Tests and demos use it to commit events "in the past".
func WithClock(now func() time.Time) MemoryOption {
	return func(m *Memory) { m.clock = now }
}

// NewMemory returns an empty in-memory store.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{
		clock:   time.Now,
		streams: make(map[string]*streamState),
		tables:  make(map[string]bool),
	}
	m.log.init()
	for _, o := range opts {
		o(m)
	}
	return m
}

type pendingEvent struct {
	stream string
	st     *streamState // nil for a stream with no committed event yet
	data   event.Event
}

// streamState is a stream's committed version and its name, interned: every
// record of the stream shares the one string.
type streamState struct {
	name    string
	version uint64
}

// participant is a table written in the current unit of work.
type participant interface {
	rollback()
	commit()
}

// errTxDone is the panic value of a Tx used after its Update returned: a
// bug in the caller, not a condition to handle.
var errTxDone = errors.New("store: unit of work used after its Update returned")

type memTx struct {
	s    *Memory
	ctx  context.Context
	done bool
}

var _ Tx = (*memTx)(nil)

func (t *memTx) Context() context.Context { return t.ctx }

func (t *memTx) Record(stream string, e event.Event) {
	t.check()
	if t.s.recErr != nil {
		return
	}
	if err := checkRecord(stream, e); err != nil {
		t.s.recErr = err
		return
	}
	st := t.s.streams[stream]
	if st != nil {
		stream = st.name
	}
	t.s.pending = append(t.s.pending, pendingEvent{stream: stream, st: st, data: e})
}

// RecordIn implements StreamRecorder: the name is put together in a stack
// buffer and looked up, so recording to a known stream allocates nothing.
func (t *memTx) RecordIn(prefix, id string, e event.Event) {
	t.check()
	if t.s.recErr != nil {
		return
	}
	var buf [96]byte
	name := append(append(buf[:0], prefix...), id...)
	st := t.s.streams[string(name)] // no allocation: the compiler looks up the bytes
	if st == nil {
		t.Record(string(name), e)
		return
	}
	if e == nil {
		t.s.recErr = checkRecord(st.name, e)
		return
	}
	// A committed stream's name has passed checkStream already.
	t.s.pending = append(t.s.pending, pendingEvent{stream: st.name, st: st, data: e})
}

func (t *memTx) StreamVersion(stream string) (uint64, error) {
	t.check()
	if err := checkStream(stream); err != nil {
		return 0, err
	}
	var v uint64
	if st := t.s.streams[stream]; st != nil {
		v = st.version
	}
	for _, p := range t.s.pending {
		if p.stream == stream {
			v++
		}
	}
	return v, nil
}

func (t *memTx) ExpectVersion(stream string, version uint64) error {
	// The writer lock is held for the whole unit of work, so a check now is
	// as good as a check at commit.
	v, err := t.StreamVersion(stream)
	if err != nil {
		return err
	}
	if v != version {
		return &ConflictError{Key: stream, Expected: version, Actual: v}
	}
	return nil
}

func (t *memTx) check() {
	if t.done {
		panic(errTxDone)
	}
}

// checkStream refuses a stream name that PostgreSQL text cannot hold, so
// that Memory accepts exactly the streams durable stores accept.
func checkStream(stream string) error {
	if r := checkText(stream); r != "" {
		return &InvalidError{What: "stream", Reason: r}
	}
	return nil
}

// checkRecord refuses a nil event and an invalid stream name.
func checkRecord(stream string, e event.Event) error {
	if e == nil {
		return &InvalidError{What: "event", Reason: fmt.Sprintf("nil event recorded for stream %q", stream)}
	}
	return checkStream(stream)
}

// Update implements Store. See Store.Update for the contract. fn runs under
// the store's writer lock, so it must not call Update on the same store
// (directly or by dispatching a command): that would wait for itself.
func (m *Memory) Update(ctx context.Context, fn func(tx Tx) error) (event.Position, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return 0, ErrClosed
	}
	tx := m.newTx(ctx)
	ok := false
	defer func() {
		tx.done = true
		tx.ctx = context.Background() // do not keep the caller's context alive
		if !ok {
			m.rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return 0, err
	}
	if err := m.recErr; err != nil {
		return 0, err
	}
	pos := m.commit(ctx)
	ok = true
	return pos, nil
}

// txSlab is how many units of work one allocation provides.
const txSlab = 64

// newTx returns a fresh unit of work. A *memTx must stay unique, so that a
// Tx kept after its Update returned is caught (check) rather than mistaken
// for a later one; instead of one allocation per Update, they are carved
// out of slabs of txSlab and never reused. m.mu is held.
func (m *Memory) newTx(ctx context.Context) *memTx {
	if len(m.txs) == 0 {
		m.txs = make([]memTx, txSlab)
	}
	tx := &m.txs[0]
	m.txs = m.txs[1:]
	tx.s, tx.ctx = m, ctx
	return tx
}

func (m *Memory) rollback() {
	for i, p := range m.touched {
		p.rollback()
		m.touched[i] = nil
	}
	m.touched = m.touched[:0]
	clear(m.pending)
	m.pending = m.pending[:0]
	m.recErr = nil
}

func (m *Memory) commit(ctx context.Context) event.Position {
	for i, p := range m.touched {
		p.commit()
		m.touched[i] = nil
	}
	m.touched = m.touched[:0]
	head := event.Position(m.log.head.Load())
	if len(m.pending) == 0 {
		return head
	}
	now := m.clock()
	md := event.MetadataFrom(ctx)
	for i, p := range m.pending {
		st := p.st
		if st == nil {
			if st = m.streams[p.stream]; st == nil { // a new stream
				st = &streamState{name: p.stream}
				m.streams[p.stream] = st
			}
		}
		st.version++
		head++
		m.log.put(event.Record{
			ID:       m.ids.next(),
			Type:     p.data.EventType(),
			Stream:   st.name,
			Version:  st.version,
			Position: head,
			Time:     now,
			Metadata: md,
			Data:     p.data,
		})
		m.pending[i] = pendingEvent{}
	}
	m.pending = m.pending[:0]
	m.log.publish(head)
	return head
}

// Close makes later calls return ErrClosed and wakes Wait callers. It waits
// for a unit of work in progress to finish. Closing twice is a no-op.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Swap(true) {
		return nil
	}
	m.log.wake.Publish() // waiters see closed
	return nil
}

// Contiguous reports true: Memory positions have no holes.
func (m *Memory) Contiguous() bool { return true }

// Read implements Log. It never blocks on a unit of work in progress.
func (m *Memory) Read(ctx context.Context, after event.Position, dst []event.Record) ([]event.Record, error) {
	if m.closed.Load() {
		return dst, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	return m.log.read(after, dst), nil
}

// Head implements Log.
func (m *Memory) Head(ctx context.Context) (event.Position, error) {
	if m.closed.Load() {
		return 0, ErrClosed
	}
	return event.Position(m.log.head.Load()), nil
}

// Wait implements Log. Waiters are woken by the commit itself, not by polling.
func (m *Memory) Wait(ctx context.Context, after event.Position) error {
	return m.log.wait(ctx, after, &m.closed)
}

// idSource hands out random (version 4) UUIDs from a buffer refilled from
// crypto/rand 256 IDs at a time: one system call per 256 events instead of
// one per event, which is most of uuid.New's cost. Guarded by the writer
// lock.
type idSource struct {
	buf [256 * 16]byte
	off int
}

func (s *idSource) next() uuid.UUID {
	if s.off == 0 || s.off == len(s.buf) {
		rand.Read(s.buf[:]) // never fails: crypto/rand crashes the program rather than return an error
		s.off = 0
	}
	var id uuid.UUID
	copy(id[:], s.buf[s.off:s.off+16])
	s.off += 16
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}

const segSize = 4096

type segment [segSize]event.Record

// memLog is an append-only log whose readers never lock: the single writer
// fills slots, then publishes the new head with an atomic store, and readers
// only look at slots below the head they loaded.
type memLog struct {
	segs atomic.Pointer[[]*segment]
	head atomic.Uint64
	wake notify.Broadcast // published when head advances and on Close
}

func (l *memLog) init() {
	empty := []*segment{}
	l.segs.Store(&empty)
}

func (l *memLog) put(rec event.Record) {
	i := uint64(rec.Position) - 1
	segs := *l.segs.Load()
	n := int(i / segSize)
	if n >= len(segs) {
		grown := make([]*segment, len(segs)+1, len(segs)*2+1)
		copy(grown, segs)
		grown[n] = new(segment)
		l.segs.Store(&grown)
		segs = grown
	}
	segs[n][i%segSize] = rec
}

func (l *memLog) publish(head event.Position) {
	l.head.Store(uint64(head))
	l.wake.Publish()
}

func (l *memLog) read(after event.Position, dst []event.Record) []event.Record {
	head := l.head.Load()
	if uint64(after) >= head {
		return dst
	}
	max := cap(dst) - len(dst)
	if max <= 0 {
		max = DefaultReadBatch
	}
	n := int(min(head-uint64(after), uint64(max)))
	// Load the segments after the head: every slot below it is there.
	segs := *l.segs.Load()
	k := len(dst)
	dst = slices.Grow(dst, n)[:k+n]
	// Copy a segment's run of records at a time.
	for i, out := uint64(after), dst[k:]; len(out) > 0; {
		c := copy(out, segs[i/segSize][i%segSize:])
		i += uint64(c)
		out = out[c:]
	}
	return dst
}

func (l *memLog) wait(ctx context.Context, after event.Position, closed *atomic.Bool) error {
	for {
		if closed.Load() {
			return ErrClosed
		}
		if event.Position(l.head.Load()) > after {
			return nil
		}
		// Take the channel before looking again: a publish after the look
		// closes it.
		ch := l.wake.Wait()
		if closed.Load() {
			return ErrClosed
		}
		if event.Position(l.head.Load()) > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
