package natsbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// Relay publishes a store.Log to a JetStream stream, in log order, one
// message per record. See the package documentation for the guarantees.
type Relay struct {
	js  jetstream.JetStream
	log store.Log
	reg *event.Registry
	cfg config

	subjects map[[2]string]string // (category-bearing stream, type) -> subject; run goroutine only

	published atomic.Uint64 // newest position acknowledged by the stream
	fenced    atomic.Int64
	mu        sync.Mutex
	err       error // infrastructure failure being retried, or nil
}

// RelayStatus is a snapshot of a Relay's progress.
type RelayStatus struct {
	// Published is the newest source position the stream acknowledged.
	Published event.Position
	// Fenced counts publishes refused because another writer had moved
	// the stream (the relay then re-read the stream's tail).
	Fenced int64
	// Err is the infrastructure failure the relay is retrying, or nil.
	Err error
}

// NewRelay returns a relay from lg to the stream named by the options,
// encoding payloads with reg. Start it with Run.
func NewRelay(js jetstream.JetStream, lg store.Log, reg *event.Registry, opts ...Option) *Relay {
	return &Relay{js: js, log: lg, reg: reg, cfg: newConfig(opts), subjects: map[[2]string]string{}}
}

// Status reports the relay's progress.
func (r *Relay) Status() RelayStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RelayStatus{Published: event.Position(r.published.Load()), Fenced: r.fenced.Load(), Err: r.err}
}

func (r *Relay) setErr(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// errFenced: a publish found the stream moved by another writer.
var errFenced = errors.New("natsbus: stream moved by another writer")

// Run relays until ctx ends (it then returns nil) or a record cannot be
// published at all (a *store.RecordError: its payload type is not
// registered in reg, or the source log cannot decode it), which it returns.
// It creates the stream when it does not exist, resumes after the newest
// position the stream holds, and retries failures of NATS or of the source
// log for as long as they last (Status shows them). Run must not be called
// concurrently on one Relay; two Relays on one stream are safe (see the
// package documentation).
func (r *Relay) Run(ctx context.Context) error {
	failures := 0
	for {
		err := r.relay(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errFenced):
			r.fenced.Add(1)
			failures = 0
			continue
		case isRecordError(err):
			r.setErr(err)
			return err
		}
		failures++
		r.setErr(err)
		t := time.NewTimer(projection.InfraBackoff(failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func isRecordError(err error) bool {
	var re *store.RecordError
	return errors.As(err, &re)
}

// ensureStream returns the stream, creating it when missing.
func (r *Relay) ensureStream(ctx context.Context) (jetstream.Stream, error) {
	return ensureStream(ctx, r.js, &r.cfg)
}

// EnsureStream returns the stream named by the options, creating it (on
// <prefix>.>, file storage, direct gets allowed, adjusted by
// WithStreamConfig) when it does not exist. The Relay calls it when it
// starts; readers may call it so that they need not wait for the writer.
// Errors: *UnavailableError, ctx.Err().
func EnsureStream(ctx context.Context, js jetstream.JetStream, opts ...Option) (jetstream.Stream, error) {
	c := newConfig(opts)
	return ensureStream(ctx, js, &c)
}

func ensureStream(ctx context.Context, js jetstream.JetStream, c *config) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, c.stream)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, unavailable(ctx, "stream info", err)
	}
	sc := jetstream.StreamConfig{
		Name:        c.stream,
		Subjects:    []string{c.prefix + ".>"},
		Storage:     jetstream.FileStorage,
		AllowDirect: true,
		Duplicates:  2 * time.Minute,
	}
	if c.streamFn != nil {
		c.streamFn(&sc)
	}
	s, err = js.CreateStream(ctx, sc)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = js.Stream(ctx, c.stream)
	}
	if err != nil {
		return nil, unavailable(ctx, "create stream", err)
	}
	return s, nil
}

// tail returns the stream's last sequence and the newest source position it
// holds, stepping back over foreign messages.
func tail(ctx context.Context, s jetstream.Stream) (seq uint64, pos event.Position, err error) {
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, unavailable(ctx, "stream info", err)
	}
	last, firstSeq := info.State.LastSeq, info.State.FirstSeq
	for q := last; q >= firstSeq && q > 0; q-- {
		m, err := s.GetMsg(ctx, q)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			return 0, 0, unavailable(ctx, "get message", err)
		}
		if p, _, ok := positions(m.Header); ok {
			return last, p, nil
		}
	}
	return last, 0, nil
}

type inflight struct {
	fut jetstream.PubAckFuture
	pos event.Position
	seq uint64 // the sequence the message must get
}

// relay syncs with the stream's tail and publishes until an error.
func (r *Relay) relay(ctx context.Context) error {
	s, err := r.ensureStream(ctx)
	if err != nil {
		return err
	}
	seq, pos, err := tail(ctx, s)
	if err != nil {
		return err
	}
	r.published.Store(uint64(pos))
	r.setErr(nil)
	// Publishes made while the client reconnects are buffered, and their
	// acknowledgements wait; a status change ends the attempt instead, so
	// that the outage shows in Status and the tail is read again after it.
	nc := r.js.Conn()
	down := nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	defer nc.RemoveStatusListener(down)
	if st := nc.Status(); st != nats.CONNECTED {
		return &UnavailableError{Op: "publish", Err: errors.New("connection " + st.String())}
	}
	var (
		buf     = make([]event.Record, 0, store.DefaultReadBatch)
		pending = make([]inflight, 0, r.cfg.window)
		head    int    // pending[head:] are in flight
		lastID  string // message ID of the record at pos, once this attempt published it
		// shared by every message: header values are never modified
		streamHdr = []string{r.cfg.stream}
	)
	// settle waits for the oldest publishes until at most keep are in
	// flight.
	settle := func(keep int) error {
		for len(pending)-head > keep {
			f := pending[head]
			select {
			case ack := <-f.fut.Ok():
				if err := checkAck(ack, f.seq); err != nil {
					return err
				}
				r.published.Store(uint64(f.pos))
			case err := <-f.fut.Err():
				return classify(ctx, err)
			case st := <-down:
				return &UnavailableError{Op: "publish", Err: errors.New("connection " + st.String())}
			case <-ctx.Done():
				return ctx.Err()
			}
			pending[head] = inflight{}
			head++
		}
		if head == len(pending) {
			pending, head = pending[:0], 0
		}
		return nil
	}
	defer func() {
		// Let the publishes in flight land (or fail) before the stream's
		// tail is read again, so that the next attempt starts from it.
		// During an outage they cannot: fencing covers any that land
		// after the next attempt has read the tail.
		if head < len(pending) && nc.IsConnected() {
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			select {
			case <-r.js.PublishAsyncComplete():
			case <-wctx.Done():
			}
		}
	}()
	for {
		recs, err := r.log.Read(ctx, pos, buf[:0])
		if err != nil {
			if len(recs) == 0 {
				if isRecordError(err) {
					return err
				}
				return fmt.Errorf("natsbus: read the source log: %w", err)
			}
			err = nil // publish what was read; the error comes back next time
		}
		if len(recs) == 0 {
			if err := settle(0); err != nil {
				return err
			}
			if err := r.waitLog(ctx, pos, down); err != nil {
				return fmt.Errorf("natsbus: wait on the source log: %w", err)
			}
			continue
		}
		for i := range recs {
			rec := &recs[i]
			if rec.Position <= pos {
				continue
			}
			msg, err := encode(&r.cfg, r.reg, rec, pos, r.subject(rec))
			if err != nil {
				return err
			}
			// The expectations are set as headers directly (what the
			// client's publish options do, without their allocations).
			h := msg.Header
			h[jetstream.ExpectedStreamHeader] = streamHdr
			h[jetstream.ExpectedLastSeqHeader] = []string{strconv.FormatUint(seq, 10)}
			if lastID != "" {
				// The sequence alone would let a foreign message that
				// took a slot make a pipelined successor's expectation
				// come true; the previous record's ID rules that out.
				// (Not on the first publish after reading the tail:
				// a restarted server may not know the last ID.)
				h[jetstream.ExpectedLastMsgIDHeader] = []string{lastID}
			}
			if r.cfg.sync {
				ack, err := r.js.PublishMsg(ctx, msg)
				if err != nil {
					return classify(ctx, err)
				}
				if err := checkAck(ack, seq+1); err != nil {
					return err
				}
				r.published.Store(uint64(rec.Position))
			} else {
				if err := settle(r.cfg.window - 1); err != nil {
					return err
				}
				fut, err := r.js.PublishMsgAsync(msg)
				if err != nil {
					return classify(ctx, err)
				}
				pending = append(pending, inflight{fut: fut, pos: rec.Position, seq: seq + 1})
			}
			seq++
			pos = rec.Position
			lastID = msg.Header.Get(jetstream.MsgIDHeader)
		}
		clear(recs)
	}
}

// waitLog waits for the source log to move past pos, or for the NATS
// connection to go down (so that an idle relay, too, shows an outage).
func (r *Relay) waitLog(ctx context.Context, pos event.Position, down <-chan nats.Status) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- r.log.Wait(wctx, pos) }()
	select {
	case err := <-errc:
		return err
	case st := <-down:
		cancel()
		<-errc
		return &UnavailableError{Op: "publish", Err: errors.New("connection " + st.String())}
	}
}

func checkAck(ack *jetstream.PubAck, want uint64) error {
	if ack.Duplicate || ack.Sequence != want {
		// Another writer published this record (or the stream moved).
		return errFenced
	}
	return nil
}

// classify sorts a publish error into fencing and infrastructure.
func classify(ctx context.Context, err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errFenced
	}
	return unavailable(ctx, "publish", err)
}

func (r *Relay) subject(rec *event.Record) string {
	cat := rec.Stream
	for i := 0; i < len(cat); i++ {
		if cat[i] == '/' {
			cat = cat[:i]
			break
		}
	}
	k := [2]string{cat, rec.Type}
	s, ok := r.subjects[k]
	if !ok {
		if len(r.subjects) > 4096 {
			clear(r.subjects)
		}
		s = Subject(r.cfg.prefix, cat, rec.Type)
		r.subjects[k] = s
	}
	return s
}
