package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// MaxEventsPerUpdate is the most events one unit of work may record: a
// position keeps 16 bits for the event's index within its transaction.
const MaxEventsPerUpdate = 1 << 16

// A commit that appends to a stream without ExpectVersion and finds its
// next version taken by a concurrent writer re-reads the head and tries
// again, for as long as its context allows: such a blind append has no
// version to conflict on, so it must not fail for losing a race, however
// hot the stream (many writers on one stream lose, one after the other, to
// each round's winner). After the first few losses it waits a random
// moment, growing up to maxAppendBackoff, so that the losers of one round
// do not all collide again in the next.
const (
	appendRetriesWithoutBackoff = 3
	maxAppendBackoff            = 2 * time.Millisecond
)

// appendBackoff waits before attempt (2, 3, ...) of a blind append, or
// returns ctx's error, joined with cause (the last unique violation), once
// ctx is done.
func appendBackoff(ctx context.Context, attempt int, cause error) error {
	if err := ctx.Err(); err != nil {
		return wrap(ctx, "append events", cause)
	}
	if attempt <= appendRetriesWithoutBackoff {
		return nil
	}
	limit := min(maxAppendBackoff, 50*time.Microsecond<<min(attempt-appendRetriesWithoutBackoff, 10))
	t := time.NewTimer(mrand.N(limit) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return wrap(ctx, "append events", cause)
	case <-t.C:
		return nil
	}
}

// rollbackTimeout bounds the rollback of a failed unit of work, which runs
// even when the caller's context is done.
const rollbackTimeout = 5 * time.Second

// Update implements store.Store: fn runs in one PostgreSQL transaction
// (READ COMMITTED), and its row writes, its own SQL and its events commit
// together. See the package doc for how stream versions are checked.
//
// Errors: fn's error, unchanged; *store.ConflictError (store.ErrConflict)
// when a stream version or row version check fails at commit, wrapped with
// the unique_violation that revealed it; store.ErrConflict also for
// serialization failures and deadlocks; *store.InvalidError
// (store.ErrInvalid) for a nil event, a payload JSON cannot encode, or text
// PostgreSQL refuses (see the package doc); store.ErrClosed; errors matching
// ctx.Err(); event.ErrUnknownType for a payload type missing from the
// registry; ErrTooManyEvents; otherwise the driver error, wrapped.
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) (event.Position, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()

	// The connection is acquired explicitly, rather than through
	// pool.Begin, so that a unit of work without events can read the head
	// after its commit without waiting for a second pool slot. BEGIN is
	// sent lazily (see pgTx.begin): a unit of work that runs no SQL before
	// its commit sends BEGIN, its append and COMMIT in one round trip.
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, wrap(ctx, "acquire connection", err)
	}
	defer conn.Release()
	t := &pgTx{s: s, ctx: ctx, conn: conn}
	defer func() {
		t.done = true
		t.releasePending()
		if !t.ended && conn.Conn().PgConn().TxStatus() != 'I' {
			// Also on panic, and also when ctx is done: a connection
			// must not go back to the pool inside a transaction.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			if _, err := conn.Exec(rctx, "ROLLBACK"); err != nil {
				// pgxpool would drop it anyway; say so plainly.
				_ = conn.Conn().Close(rctx)
			}
			cancel()
		}
	}()
	if err := fn(t); err != nil {
		return 0, err
	}
	if t.err != nil {
		return 0, t.err
	}
	pos, err := t.commit()
	if err != nil {
		return 0, err
	}
	if len(t.pending) > 0 {
		s.committed()
	}
	return pos, nil
}

// SQL returns the pgx transaction behind a unit of work of a pgstore Store,
// so a command handler can run its own SQL on normalised tables in the same
// transaction as its events. It reports false for a Tx of another store.
// The transaction belongs to the unit of work: do not commit or roll it back.
// It begins, if no statement of the unit of work has begun it yet, when SQL
// is called; if it cannot, the returned Tx fails every statement with the
// cause, and so does Update. After Update returned, its statements fail.
func SQL(tx store.Tx) (pgx.Tx, bool) {
	t, ok := tx.(*pgTx)
	if !ok {
		return nil, false
	}
	if t.done {
		return brokenTx{err: errTxDone}, true
	}
	if err := t.begin(t.ctx); err != nil {
		// The unit of work fails with err whatever the handler does; the
		// handler's own statements get it too.
		if t.err == nil {
			t.err = err
		}
		return brokenTx{err: err}, true
	}
	return t.tx, true
}

type pendingEvent struct {
	stream string
	data   event.Event
}

// streamState is what a unit of work knows about one stream.
type streamState struct {
	read     bool   // base has been read
	base     uint64 // committed version when first read in this unit of work
	recorded uint64 // events recorded for the stream in this unit of work
	pinned   bool   // ExpectVersion succeeded: append right after base
	expected uint64 // the version given to the last successful ExpectVersion
}

// pgTx is the store.Tx and store.RowTx of a Store.
type pgTx struct {
	s       *Store
	ctx     context.Context
	tx      pgx.Tx // nil until begin
	conn    *pgxpool.Conn
	done    bool
	ended   bool // the transaction was committed or rolled back
	pending []pendingEvent
	pbuf    *[]pendingEvent // where pending came from, in pendingPool
	streams map[string]*streamState
	order   []string // streams in order of first use, for stable errors
	err     error    // the first invalid Record; it fails the unit of work
}

var (
	_ store.Tx    = (*pgTx)(nil)
	_ store.RowTx = (*pgTx)(nil)
)

func (t *pgTx) Context() context.Context { return t.ctx }

// begin starts the transaction, once, before the first statement a unit of
// work runs before its commit. Deferring BEGIN this way costs nothing in
// isolation or atomicity (a transaction's snapshot is taken by its first
// statement, not by BEGIN) and saves a round trip; queryRow saves it even
// when a statement runs before the commit.
func (t *pgTx) begin(ctx context.Context) error {
	if t.tx != nil {
		return nil
	}
	tx, err := t.conn.Begin(ctx)
	if err != nil {
		return wrap(ctx, "begin", err)
	}
	t.tx = tx
	return nil
}

func (t *pgTx) state(stream string) *streamState {
	st, ok := t.streams[stream]
	if !ok {
		if t.streams == nil {
			t.streams = make(map[string]*streamState)
		}
		st = &streamState{}
		t.streams[stream] = st
		t.order = append(t.order, stream)
	}
	return st
}

// queryRow runs a one-row statement of the unit of work; when it is the
// first, BEGIN goes in the same round trip.
func (t *pgTx) queryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.tx != nil {
		return t.tx.QueryRow(ctx, sql, args...)
	}
	var b pgx.Batch
	b.BeginTx(pgx.TxOptions{})
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, &b)
	t.tx = br.Tx()
	return beginRow{t: t, br: br}
}

// beginRow is the row of queryRow's first statement.
type beginRow struct {
	t  *pgTx
	br pgx.BatchResults
}

func (r beginRow) Scan(dest ...any) error {
	_, err := r.br.Exec() // BEGIN
	if err == nil {
		err = r.br.QueryRow().Scan(dest...)
	}
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	if r.t.conn.Conn().PgConn().TxStatus() == 'I' {
		// BEGIN never ran: the next statement tries again.
		r.t.tx = nil
	}
	return err
}

// Record implements store.Tx. Events are buffered and inserted by one
// statement at commit. It panics after Update returned.
// A nil event fails the unit of work with a *store.InvalidError; so does a
// stream name PostgreSQL text cannot hold (at commit, from the database).
func (t *pgTx) Record(stream string, e event.Event) {
	if t.done {
		panic(errTxDone)
	}
	if e == nil {
		if t.err == nil {
			t.err = &store.InvalidError{What: "event", Reason: fmt.Sprintf("nil event recorded for stream %q", stream)}
		}
		return
	}
	if t.pbuf == nil {
		t.pbuf = pendingPool.Get().(*[]pendingEvent)
		t.pending = (*t.pbuf)[:0]
	}
	t.pending = append(t.pending, pendingEvent{stream: stream, data: e})
	t.state(stream).recorded++
}

// pendingPool recycles the buffers of recorded events between units of
// work (they are done with when Update returns).
var pendingPool = sync.Pool{New: func() any { return new([]pendingEvent) }}

// releasePending returns the buffer of recorded events to pendingPool,
// without the events, unless it has grown beyond maxPooledEvents.
func (t *pgTx) releasePending() {
	if t.pbuf == nil {
		return
	}
	if cap(t.pending) <= maxPooledEvents {
		clear(t.pending)
		*t.pbuf = t.pending[:0]
		pendingPool.Put(t.pbuf)
	}
	t.pbuf, t.pending = nil, nil
}

// StreamVersion implements store.Tx. The committed version is read once per
// stream and unit of work, so repeated calls agree with each other.
func (t *pgTx) StreamVersion(stream string) (uint64, error) {
	if t.done {
		return 0, errTxDone
	}
	st := t.state(stream)
	if !st.read {
		var v int64
		if err := t.queryRow(t.ctx, t.s.q.streamVersion, stream).Scan(&v); err != nil {
			return 0, wrap(t.ctx, "read stream version", err)
		}
		st.read, st.base = true, uint64(v)
	}
	return st.base + st.recorded, nil
}

// ExpectVersion implements store.Tx. Besides checking now, it pins the
// stream: its events are appended at exactly the versions that follow, so a
// concurrent writer that appended in the meantime makes the commit fail on
// the UNIQUE (stream, version) constraint instead of the events landing
// after it.
func (t *pgTx) ExpectVersion(stream string, version uint64) error {
	v, err := t.StreamVersion(stream)
	if err != nil {
		return err
	}
	if v != version {
		return &store.ConflictError{Key: stream, Expected: version, Actual: v}
	}
	st := t.streams[stream]
	st.pinned, st.expected = true, version
	return nil
}

// GetRow implements store.RowTx.
func (t *pgTx) GetRow(ctx context.Context, table, key string) ([]byte, uint64, error) {
	if t.done {
		return nil, 0, errTxDone
	}
	var data []byte
	var ver int64
	err := t.queryRow(ctx, t.s.q.getRow, table, key).Scan(&data, &ver)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, store.NotFound(table, key)
	}
	if err != nil {
		return nil, 0, wrap(ctx, "get row", err)
	}
	return data, uint64(ver), nil
}

// PutRow implements store.RowTx.
func (t *pgTx) PutRow(ctx context.Context, table, key string, data []byte) (uint64, error) {
	if t.done {
		return 0, errTxDone
	}
	var ver int64
	if err := t.queryRow(ctx, t.s.q.upsertRow, table, key, data).Scan(&ver); err != nil {
		return 0, wrap(ctx, "put row", err)
	}
	return uint64(ver), nil
}

// PutRowIf implements store.RowTx. Each variant is a single statement, so
// the version check and the write cannot be split by a concurrent writer.
func (t *pgTx) PutRowIf(ctx context.Context, table, key string, data []byte, expected uint64) (uint64, error) {
	if t.done {
		return 0, errTxDone
	}
	var (
		ver int64
		err error
	)
	if expected == 0 {
		err = t.queryRow(ctx, t.s.q.insertRow, table, key, data).Scan(&ver)
	} else {
		err = t.queryRow(ctx, t.s.q.updateRow, table, key, data, int64(expected)).Scan(&ver)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// The check failed. No statement failed, so the transaction is
		// still usable and the handler may carry on.
		var actual int64
		if err := t.queryRow(ctx, t.s.q.rowVersion, table, key).Scan(&actual); err != nil {
			return 0, wrap(ctx, "read row version", err)
		}
		return 0, &store.ConflictError{Table: table, Key: key, Expected: expected, Actual: uint64(actual)}
	}
	if err != nil {
		return 0, wrap(ctx, "put row", err)
	}
	return uint64(ver), nil
}

// DeleteRow implements store.RowTx.
func (t *pgTx) DeleteRow(ctx context.Context, table, key string) error {
	if t.done {
		return errTxDone
	}
	if err := t.begin(ctx); err != nil {
		return err
	}
	tag, err := t.tx.Exec(ctx, t.s.q.deleteRow, table, key)
	if err != nil {
		return wrap(ctx, "delete row", err)
	}
	if tag.RowsAffected() == 0 {
		return store.NotFound(table, key)
	}
	return nil
}

// metadataJSON is how event.Metadata is stored.
type metadataJSON struct {
	CorrelationID string `json:"correlation_id,omitempty"`
	CausationID   string `json:"causation_id,omitempty"`
	UserID        string `json:"user_id,omitempty"`
	TraceParent   string `json:"traceparent,omitempty"`
}

const savepoint = "cqrskit_append"

// The statements around an append: a fresh transaction begins with it,
// otherwise it goes under a savepoint; the COMMIT is dropped when the test
// hook needs to run before it.
var (
	appendBegin         = []string{"BEGIN"}
	appendCommit        = []string{"COMMIT"}
	appendSavepoint     = []string{"SAVEPOINT " + savepoint}
	appendReleaseCommit = []string{"RELEASE SAVEPOINT " + savepoint, "COMMIT"}
)

// commit appends the buffered events and commits. It returns the position of
// the last event, or the head when there were none.
//
// Round trips: a unit of work that ran no SQL of its own (t.tx is nil) sends
// BEGIN, the append and COMMIT as one pipeline, so it costs one; the append
// is then the transaction's first write, and the transaction's own id is as
// fresh as a savepoint's would be. Otherwise the append goes under a
// savepoint (a fresh id, and a retry that keeps the handler's work), and
// SAVEPOINT, the append, RELEASE and COMMIT are again one pipeline. Only a
// lost race for a stream version costs more.
func (t *pgTx) commit() (event.Position, error) {
	ctx, q := t.ctx, &t.s.q
	if err := t.recheckPinned(); err != nil {
		return 0, err
	}
	if len(t.pending) == 0 {
		return t.commitEmpty()
	}
	if len(t.pending) > MaxEventsPerUpdate {
		return 0, fmt.Errorf("%w: %d recorded, at most %d", ErrTooManyEvents, len(t.pending), MaxEventsPerUpdate)
	}

	// The rows are inserted sorted by stream, so that two units of work
	// appending to the same streams wait for each other's unique-index
	// entries in the same order and cannot deadlock. Each keeps its index
	// in record order, which is what its position follows.
	n := len(t.pending)
	c := getAppendCols(n)
	defer putAppendCols(c)
	order, k, seen := c.order, c.k, c.seen
	for i, p := range t.pending {
		order[i] = i
		seen[p.stream]++
		k[i] = int(seen[p.stream])
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(t.pending[a].stream, t.pending[b].stream) })
	idxs, bases, ks := c.idxs, c.bases, c.ks
	streams, types, datas := c.streams, c.types, c.datas
	if err := newEventIDs(c.ids, c.rnd); err != nil {
		return 0, err
	}
	blind := false
	var known string // the last type name found in the registry
	for j, i := range order {
		p := t.pending[i]
		typ := p.data.EventType()
		if err := t.s.encodePayload(c, p.data, typ, typ == known); err != nil {
			var ue *json.UnsupportedValueError
			if errors.As(err, &ue) {
				return 0, &store.InvalidError{What: "event", Reason: "cannot encode it as JSON", Err: err}
			}
			return 0, fmt.Errorf("pgstore: %w", err)
		}
		known = typ
		idxs[j], ks[j] = int64(i), int64(k[i])
		streams[j], types[j] = p.stream, typ
		if st := t.streams[p.stream]; st.pinned {
			bases[j] = int64(st.base)
		} else {
			bases[j] = -1
			blind = true
		}
	}
	// One string for all payloads: each row's is a piece of it.
	all, start := c.json.String(), 0
	for j, end := range c.ends {
		datas[j], start = all[start:end], end+1
	}
	md := event.MetadataFrom(ctx)
	mdb, err := json.Marshal(metadataJSON(md))
	if err != nil {
		return 0, fmt.Errorf("pgstore: encode metadata: %w", err)
	}
	now := t.s.clock()

	// fresh: no statement has run, so every stream is blind (pinning
	// reads), and a failed append loses nothing but itself.
	fresh := t.tx == nil
	// The test hook needs the append done and the commit still to come.
	folded := t.s.beforeCommit == nil
	args := []any{idxs, streams, bases, ks, types, datas, mdb, now, c.ids}
	var last int64
	for attempt := 1; ; attempt++ {
		// There is deliberately no pg_notify here: see notifyLoop.
		sql, pre, post := q.insertEventsTop, appendBegin, appendCommit
		if !fresh {
			sql, pre, post = q.insertEvents, appendSavepoint, appendReleaseCommit
		}
		if !folded {
			post = post[:len(post)-1]
		}
		raw := false
		if t.s.rawAppend {
			last, raw, err = sendAppendRaw(ctx, t.conn, sql, pre, post, c, mdb, now)
		}
		if !raw {
			var b pgx.Batch
			for _, s := range pre {
				b.Queue(s)
			}
			b.Queue(sql, args...)
			for _, s := range post {
				b.Queue(s)
			}
			last, err = sendAppend(ctx, t.conn, &b, len(pre))
		}
		if err == nil {
			break
		}
		if t.conn.Conn().PgConn().TxStatus() == 'I' {
			// The transaction is over (COMMIT failed, or the fresh one
			// never began): nothing to roll back.
			t.ended = true
		}
		if sqlState(err) != codeUniqueViolation {
			return 0, wrap(ctx, "append events", err)
		}
		if fresh {
			// The transaction holds nothing but the failed append.
			if _, rerr := t.conn.Exec(ctx, "ROLLBACK"); rerr != nil {
				return 0, wrap(ctx, "append events", errors.Join(err, rerr))
			}
			if berr := appendBackoff(ctx, attempt+1, err); berr != nil {
				return 0, berr
			}
			continue
		}
		// Without arguments this runs as one simple-protocol round trip;
		// releasing the savepoint keeps retries from nesting.
		if _, rerr := t.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT "+savepoint+"; RELEASE SAVEPOINT "+savepoint); rerr != nil {
			return 0, wrap(ctx, "append events", errors.Join(err, rerr))
		}
		// A unique violation is only raised once the other transaction
		// has committed, so a fresh read shows what won. A pinned stream
		// that lost is the caller's conflict; otherwise an unpinned
		// stream lost its next version, and the next attempt reads the
		// new one.
		if cerr := t.pinnedConflict(err); !blind || !isUnidentified(cerr) {
			return 0, cerr
		}
		if berr := appendBackoff(ctx, attempt+1, err); berr != nil {
			return 0, berr
		}
	}
	if !folded {
		t.s.beforeCommit(ctx)
		var b pgx.Batch
		b.Queue("COMMIT")
		if _, err := sendAppend(ctx, t.conn, &b, -1); err != nil {
			t.ended = t.conn.Conn().PgConn().TxStatus() == 'I'
			return 0, wrap(ctx, "commit", err)
		}
	}
	t.ended = true
	return event.Position(last), nil
}

// newEventIDs fills ids with random (version 4) UUIDs, from one read of
// the system's random source into buf (16 bytes an id) rather than one per
// event.
func newEventIDs(ids uuidArray, buf []byte) error {
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("pgstore: event ids: %w", err)
	}
	for i := range ids {
		id := (*[16]byte)(buf[16*i:])
		id[6] = id[6]&0x0f | 0x40 // version 4
		id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
		ids[i] = *id
	}
	return nil
}

// commitEmpty ends a unit of work without events and returns the head.
func (t *pgTx) commitEmpty() (event.Position, error) {
	ctx, q := t.ctx, &t.s.q
	var b pgx.Batch
	if t.tx != nil {
		// One round trip: the head is read after the commit, in a
		// snapshot that sees it.
		b.Queue("COMMIT")
	}
	b.Queue(q.head)
	br := t.conn.SendBatch(ctx, &b)
	var head int64
	err := func() error {
		if t.tx != nil {
			if err := execCommit(br); err != nil {
				return err
			}
		}
		return br.QueryRow().Scan(&head)
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if t.conn.Conn().PgConn().TxStatus() == 'I' {
		t.ended = true
	}
	if err != nil {
		return 0, wrap(ctx, "commit", err)
	}
	return event.Position(head), nil
}

// execCommit reads the result of a COMMIT in a batch. PostgreSQL answers
// COMMIT of a failed transaction with ROLLBACK, not with an error.
func execCommit(br pgx.BatchResults) error {
	tag, err := br.Exec()
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// sendAppend runs a batch built by commit, in which statement insert (-1:
// none) is the append, and returns the highest position inserted. The other
// statements return no rows; a COMMIT among them is checked like
// execCommit does.
func sendAppend(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch, insert int) (int64, error) {
	br := conn.SendBatch(ctx, b)
	var last int64
	err := func() error {
		for i, qq := range b.QueuedQueries {
			if i != insert {
				if qq.SQL == "COMMIT" {
					if err := execCommit(br); err != nil {
						return err
					}
				} else if _, err := br.Exec(); err != nil {
					return err
				}
				continue
			}
			rows, err := br.Query()
			if err != nil {
				return err
			}
			for rows.Next() {
				var p int64
				if err := rows.Scan(&p); err != nil {
					rows.Close()
					return err
				}
				last = max(last, p)
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return last, err
}

// recheckPinned re-reads the streams that ExpectVersion pinned but that get
// no events: without an insert there is no constraint to decide, so the
// commit compares versions instead.
func (t *pgTx) recheckPinned() error {
	var names []string
	for _, name := range t.order {
		if st := t.streams[name]; st.pinned && st.recorded == 0 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	current, err := t.committedVersions(names)
	if err != nil {
		return err
	}
	for _, name := range names {
		st := t.streams[name]
		if current[name] != st.base {
			return &store.ConflictError{Key: name, Expected: st.expected, Actual: current[name]}
		}
	}
	return nil
}

func (t *pgTx) committedVersions(names []string) (map[string]uint64, error) {
	rows, err := t.tx.Query(t.ctx, t.s.q.streamVersions, names)
	if err != nil {
		return nil, wrap(t.ctx, "read stream versions", err)
	}
	out := make(map[string]uint64, len(names))
	var name string
	var v int64
	_, err = pgx.ForEachRow(rows, []any{&name, &v}, func() error {
		out[name] = uint64(v)
		return nil
	})
	if err != nil {
		return nil, wrap(t.ctx, "read stream versions", err)
	}
	return out, nil
}

// errUnidentified marks a unique violation that no pinned stream explains.
// errTxDone is returned (or, by Record, panicked with) when a Tx is used
// after its Update returned: a bug in the caller, not a condition to handle.
var errTxDone = errors.New("pgstore: unit of work used after its Update returned")

var errUnidentified = errors.New("pgstore: stream version taken by a concurrent writer")

func isUnidentified(err error) bool { return errors.Is(err, errUnidentified) }

// pinnedConflict finds the pinned stream whose next version a concurrent
// writer took, or returns an error matching errUnidentified.
func (t *pgTx) pinnedConflict(cause error) error {
	var names []string
	for _, name := range t.order {
		if st := t.streams[name]; st.pinned && st.recorded > 0 {
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		current, err := t.committedVersions(names)
		if err != nil {
			return errors.Join(cause, err)
		}
		for _, name := range names {
			st := t.streams[name]
			if current[name] != st.base {
				// Report it as StreamVersion would have: the versions
				// recorded before ExpectVersion count on both sides.
				actual := current[name] + (st.expected - st.base)
				return conflict(&store.ConflictError{Key: name, Expected: st.expected, Actual: actual}, cause)
			}
		}
	}
	return fmt.Errorf("%w: %w: %w", store.ErrConflict, errUnidentified, cause)
}

// brokenTx is what SQL returns when the transaction could not begin: every
// statement fails with the error that also fails the unit of work.
type brokenTx struct{ err error }

var _ pgx.Tx = brokenTx{}

func (b brokenTx) Begin(context.Context) (pgx.Tx, error) { return nil, b.err }
func (b brokenTx) Commit(context.Context) error          { return b.err }
func (b brokenTx) Rollback(context.Context) error        { return b.err }
func (b brokenTx) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, b.err
}
func (b brokenTx) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults { return brokenBatch(b) }

// LargeObjects' methods panic: there is no transaction to hold them.
func (b brokenTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }
func (b brokenTx) Prepare(context.Context, string, string) (*pgconn.StatementDescription, error) {
	return nil, b.err
}
func (b brokenTx) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, b.err
}
func (b brokenTx) Query(context.Context, string, ...any) (pgx.Rows, error) { return nil, b.err }
func (b brokenTx) QueryRow(context.Context, string, ...any) pgx.Row        { return brokenRow(b) }
func (b brokenTx) Conn() *pgx.Conn                                         { return nil }

type brokenRow struct{ err error }

func (r brokenRow) Scan(...any) error { return r.err }

type brokenBatch struct{ err error }

func (r brokenBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, r.err }
func (r brokenBatch) Query() (pgx.Rows, error)         { return nil, r.err }
func (r brokenBatch) QueryRow() pgx.Row                { return brokenRow(r) }
func (r brokenBatch) Close() error                     { return r.err }
func (r brokenBatch) Tx() pgx.Tx                       { return nil }
