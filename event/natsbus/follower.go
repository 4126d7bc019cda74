package natsbus

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// Follower is a store.Log over a stream written by a Relay: positions are
// the source log's positions, so a projection.Runner, its checkpoints and
// the tokens returned by Dispatch on the writer work unchanged on a read
// node. See the package documentation for what it checks.
type Follower struct {
	js  jetstream.JetStream
	nc  *nats.Conn
	reg *event.Registry
	cfg config

	mu      sync.Mutex
	closed  bool
	stream  jetstream.Stream
	cursors map[event.Position]*cursor
	sig     chan struct{} // closed and replaced when known moves or the connection changes
	lost    chan struct{} // closed when the connection goes down; replaced when it is back
	down    bool

	known  atomic.Uint64 // newest position the watcher has seen stored
	live   atomic.Bool   // the watcher's consumer is established
	done   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	status chan nats.Status
}

// cursor is an ephemeral pull consumer positioned at stream sequence next.
type cursor struct {
	cons  jetstream.Consumer
	next  uint64
	empty time.Time // since when it returns nothing although the stream holds more
}

// staleCursor is how long a kept consumer may return nothing while the
// stream holds newer messages before it is replaced.
const staleCursor = 250 * time.Millisecond

// maxCursors bounds how many read positions a Follower keeps a consumer
// for: one per async projector reading it is typical.
const maxCursors = 16

var (
	_ store.Log = (*Follower)(nil)
)

// NewFollower returns a Follower of the stream named by the options,
// decoding payloads with reg. It starts a goroutine that watches the stream
// for new messages (that is what wakes Wait); Close stops it. The stream
// need not exist yet: until it does, Read and Head report
// *UnavailableError.
func NewFollower(js jetstream.JetStream, reg *event.Registry, opts ...Option) *Follower {
	ctx, cancel := context.WithCancel(context.Background())
	f := &Follower{
		js: js, nc: js.Conn(), reg: reg, cfg: newConfig(opts),
		cursors: map[event.Position]*cursor{},
		sig:     make(chan struct{}),
		lost:    make(chan struct{}),
		done:    make(chan struct{}),
		cancel:  cancel,
	}
	f.status = f.nc.StatusChanged()
	f.wg.Add(2)
	go f.watch(ctx)
	go f.watchConn(ctx)
	return f
}

// broadcast wakes every Wait.
func (f *Follower) broadcast() {
	f.mu.Lock()
	close(f.sig)
	f.sig = make(chan struct{})
	f.mu.Unlock()
}

func (f *Follower) raise(p event.Position) {
	for {
		k := f.known.Load()
		if uint64(p) <= k {
			return
		}
		if f.known.CompareAndSwap(k, uint64(p)) {
			f.broadcast()
			return
		}
	}
}

// watch keeps an ordered consumer on the stream's newest messages (headers
// only) and raises known as they are stored. The client re-creates the
// consumer by itself after a reconnect.
func (f *Follower) watch(ctx context.Context) {
	defer f.wg.Done()
	for n := 1; ; n++ {
		cc, err := f.startWatch(ctx)
		if err == nil {
			f.live.Store(true)
			f.broadcast()
			<-ctx.Done()
			cc.Stop()
			return
		}
		t := time.NewTimer(projection.InfraBackoff(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (f *Follower) startWatch(ctx context.Context) (jetstream.ConsumeContext, error) {
	s, err := f.js.Stream(ctx, f.cfg.stream)
	if err != nil {
		return nil, err
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverLastPolicy,
		HeadersOnly:   true,
	})
	if err != nil {
		return nil, err
	}
	return cons.Consume(func(m jetstream.Msg) {
		if p, _, ok := positions(m.Headers()); ok {
			f.raise(p)
		}
	})
}

// watchConn wakes Wait on connection changes, so that a Wait in progress
// reports an outage instead of sleeping through it.
func (f *Follower) watchConn(ctx context.Context) {
	defer f.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case st := <-f.status:
			f.mu.Lock()
			if st == nats.CONNECTED {
				if f.down {
					f.down, f.lost = false, make(chan struct{})
				}
			} else if !f.down {
				f.down = true
				close(f.lost)
			}
			f.mu.Unlock()
			f.broadcast()
		}
	}
}

// errLost: the connection went down while a request was in flight.
var errLost = errors.New("connection lost")

// request returns a context for NATS requests that ends when ctx does or
// when the connection goes down: a request in flight when the server dies
// would otherwise wait for its full timeout. Call cancel when done.
func (f *Follower) request(ctx context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithCancelCause(ctx)
	f.mu.Lock()
	lost := f.lost
	f.mu.Unlock()
	go func() {
		select {
		case <-lost:
			cancel(errLost)
		case <-rctx.Done():
		}
	}()
	return rctx, func() { cancel(nil) }
}

// Close stops the watcher and removes the Follower's consumers. It does not
// close the NATS connection. Afterwards Read, Head and Wait return
// store.ErrClosed. Close is idempotent and always returns nil.
func (f *Follower) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.done)
	curs := f.cursors
	f.cursors = nil
	s := f.stream
	f.mu.Unlock()
	f.cancel()
	f.nc.RemoveStatusListener(f.status)
	f.wg.Wait()
	if s != nil && f.nc.IsConnected() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for _, c := range curs {
			_ = s.DeleteConsumer(ctx, c.cons.CachedInfo().Name) // best effort: they expire anyway
		}
	}
	return nil
}

func (f *Follower) getStream(ctx context.Context, op string) (jetstream.Stream, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, store.ErrClosed
	}
	s := f.stream
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if st := f.nc.Status(); st != nats.CONNECTED {
		// Fail fast rather than wait for a request timeout.
		return nil, &UnavailableError{Op: op, Err: errors.New("connection " + st.String())}
	}
	if s != nil {
		return s, nil
	}
	s, err := f.js.Stream(ctx, f.cfg.stream)
	if err != nil {
		return nil, unavailable(ctx, op, err)
	}
	f.mu.Lock()
	f.stream = s
	f.mu.Unlock()
	return s, nil
}

// Head returns the newest position the stream holds. Errors:
// *UnavailableError (store.ErrUnavailable), store.ErrClosed, ctx.Err().
func (f *Follower) Head(ctx context.Context) (event.Position, error) {
	s, err := f.getStream(ctx, "head")
	if err != nil {
		return 0, err
	}
	rctx, cancel := f.request(ctx)
	defer cancel()
	_, pos, err := tail(rctx, s)
	if err != nil {
		return 0, lostErr(ctx, rctx, "head", err)
	}
	f.raise(pos)
	return pos, nil
}

// lostErr turns the cancellation of a request context (by request, when
// the connection went down) into an *UnavailableError, leaving the
// caller's own cancellation as it is.
func lostErr(ctx, rctx context.Context, op string, err error) error {
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(rctx), errLost) {
		return &UnavailableError{Op: op, Err: errLost}
	}
	return err
}

// Wait blocks until the stream holds a position > after, ctx ends
// (ctx.Err()), the Follower is closed (store.ErrClosed) or the connection
// to NATS is down (*UnavailableError). It is woken by a consumer on the
// stream, not by polling.
func (f *Follower) Wait(ctx context.Context, after event.Position) error {
	checked := false
	for {
		f.mu.Lock()
		closed, sig := f.closed, f.sig
		f.mu.Unlock()
		if closed {
			return store.ErrClosed
		}
		if event.Position(f.known.Load()) > after {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if st := f.nc.Status(); st != nats.CONNECTED {
			return &UnavailableError{Op: "wait", Err: errors.New("connection " + st.String())}
		}
		if !f.live.Load() && !checked {
			// The watcher is not established yet: ask once, then
			// wait for it (it broadcasts when it is).
			if h, err := f.Head(ctx); err != nil {
				return err
			} else if h > after {
				return nil
			}
			checked = true
		}
		select {
		case <-sig:
		case <-ctx.Done():
			return ctx.Err()
		case <-f.done:
			return store.ErrClosed
		}
	}
}

// Read appends the records after position after, in order, to dst (see
// store.Log). It checks that each message follows the record before it in
// the source log. Errors, with the records before the failure:
//   - *RetentionError (ErrRetention): the records after after are gone
//     from the stream; rebuild from the source log;
//   - *GapError (ErrGap): the stream skips or repeats source records;
//   - *MalformedError (ErrMalformed): a message without a position (see
//     SkipMalformed);
//   - *store.RecordError: a message naming its position whose payload or
//     headers do not decode (wrapping a *MalformedError, or an error
//     matching event.ErrUnknownType), for the runner's policy;
//   - *UnavailableError (store.ErrUnavailable), store.ErrClosed, ctx.Err().
func (f *Follower) Read(ctx context.Context, after event.Position, dst []event.Record) ([]event.Record, error) {
	s, err := f.getStream(ctx, "read")
	if err != nil {
		return dst, err
	}
	n := cap(dst) - len(dst)
	if n <= 0 {
		n = store.DefaultReadBatch
		dst = append(make([]event.Record, 0, len(dst)+n), dst...)
	}
	rctx, cancel := f.request(ctx)
	defer cancel()
	for attempt := 0; ; attempt++ {
		out, retry, err := f.read(rctx, s, after, dst, n)
		if !retry || attempt > 0 || rctx.Err() != nil {
			return out, lostErr(ctx, rctx, "read", err)
		}
	}
}

func (f *Follower) takeCursor(after event.Position) *cursor {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.cursors[after]
	delete(f.cursors, after)
	return c
}

func (f *Follower) putCursor(s jetstream.Stream, at event.Position, c *cursor) {
	f.mu.Lock()
	if !f.closed && f.cursors[at] == nil && len(f.cursors) < maxCursors {
		f.cursors[at] = c
		c = nil
	}
	f.mu.Unlock()
	if c != nil {
		f.dropCursor(s, c)
	}
}

func (f *Follower) dropCursor(s jetstream.Stream, c *cursor) {
	if info := c.cons.CachedInfo(); info != nil && f.nc.IsConnected() {
		go func() { // best effort: an ephemeral consumer expires anyway
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = s.DeleteConsumer(ctx, info.Name)
		}()
	}
}

// read does one Read attempt; retry reports that the cursor turned out
// stale (the stream moved under it) before anything was read.
func (f *Follower) read(ctx context.Context, s jetstream.Stream, after event.Position, dst []event.Record, n int) (out []event.Record, retry bool, err error) {
	c := f.takeCursor(after)
	reused := c != nil
	if c == nil {
		seq, err := f.locate(ctx, s, after)
		if err != nil || seq == 0 {
			return dst, false, err
		}
		cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
			DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:       seq,
			AckPolicy:         jetstream.AckNonePolicy,
			InactiveThreshold: time.Minute,
			MemoryStorage:     true,
		})
		if err != nil {
			return dst, false, unavailable(ctx, "create consumer", err)
		}
		c = &cursor{cons: cons, next: seq}
	}
	batch, err := c.cons.FetchNoWait(n)
	if err != nil {
		f.dropCursor(s, c)
		// A kept consumer may have expired (InactiveThreshold) while its
		// reader was idle: try once more with a new one.
		return dst, reused, unavailable(ctx, "fetch", err)
	}
	last := after
	start := len(dst)
	var stop error
	keep := true
	msgs := batch.Messages()
	for {
		var m jetstream.Msg
		var more bool
		select {
		case m, more = <-msgs:
		case <-ctx.Done():
			// The connection went down (or the caller gave up) with
			// the batch in flight.
			f.dropCursor(s, c)
			return dst, false, ctx.Err()
		}
		if !more {
			break
		}
		if stop != nil {
			// Drain the batch. The consumer has delivered these, so
			// the cursor cannot serve a later Read: drop it.
			keep = false
			continue
		}
		meta, err := m.Metadata()
		if err != nil || meta.Sequence.Stream != c.next {
			// Messages were removed under the consumer (retention) or
			// a delivery was lost: locate again.
			keep = false
			if len(dst) == start {
				stop = errRetry
			} else {
				stop = errStale
			}
			continue
		}
		seq := meta.Sequence.Stream
		c.next++
		h := m.Headers()
		pos, prev, ok := positions(h)
		if !ok {
			me := &MalformedError{Stream: f.cfg.stream, Seq: seq, Subject: m.Subject(), After: last, Reason: "no valid " + HeaderPosition + "/" + HeaderPrevPosition + " headers"}
			if f.cfg.skip != nil {
				f.cfg.skip(me)
				continue
			}
			keep = false // the next Read locates it again
			stop = me
			continue
		}
		if pos <= last || prev > last || (prev < last && len(dst) > start) {
			if prev > last && pos > last && len(dst) == start {
				stop = f.dropped(ctx, s, after, seq, prev, pos)
			} else {
				stop = &GapError{Stream: f.cfg.stream, Seq: seq, After: last, Prev: prev, Position: pos}
			}
			keep = false
			continue
		}
		var rec event.Record
		if err := decode(f.reg, h, m.Data(), pos, &rec); err != nil {
			if !errors.Is(err, event.ErrUnknownType) {
				err = &MalformedError{Stream: f.cfg.stream, Seq: seq, Subject: m.Subject(), After: last, Reason: "cannot decode", Err: err}
			}
			stop = &store.RecordError{Position: pos, Type: rec.Type, Err: err}
			last = pos // a Read after pos (the runner parked it) goes on from here
			continue
		}
		dst = append(dst, rec)
		last = pos
	}
	if stop == nil {
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
			f.dropCursor(s, c)
			if len(dst) > start {
				return dst, false, nil
			}
			return dst, reused, unavailable(ctx, "fetch", err)
		}
	}
	if stop == nil && len(dst) == start && reused && event.Position(f.known.Load()) > after {
		// Nothing from a kept consumer although the stream holds more.
		// Usually the consumer has not seen the newest message yet
		// (the caller reads again at once); but if that lasts, the
		// consumer has expired (InactiveThreshold) while its reader was
		// idle and a pull on it just times out: locate afresh.
		if c.empty.IsZero() {
			c.empty = time.Now()
		} else if time.Since(c.empty) > staleCursor {
			f.dropCursor(s, c)
			return dst, true, nil
		}
	} else if len(dst) > start {
		c.empty = time.Time{}
	}
	if keep {
		f.putCursor(s, last, c)
	} else {
		f.dropCursor(s, c)
	}
	switch stop {
	case nil, errStale:
		return dst, false, nil
	case errRetry:
		return dst, true, nil
	}
	return dst, false, stop
}

var (
	errRetry = errors.New("retry")
	errStale = errors.New("stale")
)

// dropped tells retention from a gap when the first message after `after`
// names a predecessor beyond it.
func (f *Follower) dropped(ctx context.Context, s jetstream.Stream, after event.Position, seq uint64, prev, pos event.Position) error {
	info, err := s.Info(ctx)
	if err != nil {
		return unavailable(ctx, "stream info", err)
	}
	if seq <= info.State.FirstSeq && info.State.FirstSeq > 1 {
		return &RetentionError{Stream: f.cfg.stream, After: after, FirstSeq: info.State.FirstSeq, FirstPrev: prev}
	}
	return &GapError{Stream: f.cfg.stream, Seq: seq, After: after, Prev: prev, Position: pos}
}

// locate returns the first stream sequence whose record lies after
// position after (or a foreign message right before it), or 0 when there is
// none. It binary-searches the stream by sequence with direct gets: about
// log2(messages) requests, never a scan.
func (f *Follower) locate(ctx context.Context, s jetstream.Stream, after event.Position) (uint64, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return 0, unavailable(ctx, "stream info", err)
	}
	st := info.State
	if st.Msgs == 0 || st.LastSeq < st.FirstSeq {
		return 0, nil
	}
	if after == 0 {
		return st.FirstSeq, nil
	}
	// valid returns the first sequence in [q, hi] holding a record, and
	// its position; ok is false when there is none.
	hi := st.LastSeq
	valid := func(q uint64) (uint64, event.Position, bool, error) {
		for ; q <= hi; q++ {
			m, err := s.GetMsg(ctx, q)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return 0, 0, false, unavailable(ctx, "get message", err)
			}
			if p, _, ok := positions(m.Header); ok {
				return q, p, true, nil
			}
		}
		return 0, 0, false, nil
	}
	// Find the smallest q in [FirstSeq, LastSeq+1] such that the first
	// record at or after q lies after `after`.
	lo, up := st.FirstSeq, st.LastSeq+1
	for lo < up {
		mid := lo + (up-lo)/2
		q, p, ok, err := valid(mid)
		if err != nil {
			return 0, err
		}
		if !ok || p > after {
			up = mid
		} else {
			lo = q + 1
		}
	}
	if lo > st.LastSeq {
		return 0, nil
	}
	return lo, nil
}
