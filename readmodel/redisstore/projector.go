package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/redis/go-redis/v9"
)

// ApplyFunc applies one record to read models in Redis. It writes them
// through Store, Ranking, SortedSet, Recent and Averages with ctx (which
// carries tx), so the writes join the batch. It must be deterministic in
// the record and must not keep ctx or tx.
type ApplyFunc func(ctx context.Context, tx *Tx, rec event.Record) error

// Projector is a projection.Projector whose read models live in a
// Namespace and whose checkpoint lives next to them, written in the same
// server-side script: every event is applied exactly once, across crashes,
// redeliveries and lost Redis writes (a Redis that restarts without its
// last writes loses the view changes and the checkpoint together, and the
// runner applies the events again).
//
// Handle buffers a record's writes; FlushBatch (projection.BatchFlusher,
// called by the runner once per batch) commits the batch in one EVALSHA
// that first checks that the stored checkpoint is the one the batch
// started from, and, when the context carries a lease
// (projection.FenceFrom), that the lease is still the writer's. With a
// projection.Partition in the context, each partition has its own
// checkpoint. It implements projection.SelfCheckpointer, Replayer and
// Rebuilder (a rebuild fills a new generation while readers read the
// current one; see Namespace).
//
// Errors of FlushBatch: a *store.ConflictError (store.ErrConflict) when
// the checkpoint moved under the batch or a newer generation was swapped
// in; a *projection.FencedError (projection.ErrFenced) when the lease is
// lost; otherwise the driver error, wrapped, after which the batch's
// outcome is unknown: the projector reloads its checkpoint before the
// batch is delivered again, so a batch that did commit is skipped.
//
// Close waits for the background deletion of an old generation.
type Projector struct {
	ns      *Namespace
	apply   ApplyFunc
	version int

	mu   sync.Mutex
	w    *writer
	bg   sync.WaitGroup
	stop chan struct{} // closed by Close; guarded by mu
	// tag and batches make each commit's checkpoint value unique.
	tag     string
	batches uint64
	cmu     sync.Mutex // serialises Close
	chunk   int
}

var (
	_ projection.Projector        = (*Projector)(nil)
	_ projection.SelfCheckpointer = (*Projector)(nil)
	_ projection.BatchFlusher     = (*Projector)(nil)
	_ projection.Replayer         = (*Projector)(nil)
	_ projection.Rebuilder        = (*Projector)(nil)
)

// ProjectorOption configures NewProjector.
type ProjectorOption func(*Projector)

// WithVersion sets the logic version written with every checkpoint; give
// the runner the same one (projection.WithVersion).
func WithVersion(v int) ProjectorOption { return func(p *Projector) { p.version = v } }

// WithShadowChunk sets how many operations a rebuild buffers before it
// commits them (default 4096).
func WithShadowChunk(n int) ProjectorOption {
	return func(p *Projector) { p.chunk = max(n, 1) }
}

// NewProjector returns a projector named after ns that runs apply for each
// record.
func NewProjector(ns *Namespace, apply ApplyFunc, opts ...ProjectorOption) *Projector {
	b := make([]byte, 6)
	rand.Read(b)
	p := &Projector{ns: ns, apply: apply, stop: make(chan struct{}), chunk: 4096, tag: hex.EncodeToString(b)}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Name implements projection.Projector: the namespace's projector name.
func (p *Projector) Name() string { return p.ns.name }

// Namespace returns the projector's namespace.
func (p *Projector) Namespace() *Namespace { return p.ns }

// writer writes one generation: the live one, or a rebuild's shadow.
type writer struct {
	p     *Projector
	gen   uint64
	parts map[string]*part
	// shadow is true while the writer fills a rebuild's generation,
	// whose commits must not switch readers to it.
	shadow bool
	// stale is set when a newer generation was found current (a rebuild
	// by another process): the next use resolves the generation again.
	stale bool
}

// part is the state of one checkpoint (one partition).
type part struct {
	loaded  bool
	durable projection.Checkpoint
	raw     string // the stored checkpoint as the script compares it
	tx      *Tx
	// lost is set when a reload found the stored checkpoint below one
	// this projector committed: Redis lost writes (a restart without
	// them). The runner is past them, so every flush fails with it until
	// LoadCheckpoint starts over from what Redis has.
	lost error
}

func (p *Projector) newWriter(gen uint64) *writer {
	return &writer{p: p, gen: gen, parts: make(map[string]*part)}
}

// field is the checkpoint field of ctx's partition.
func field(ctx context.Context) string {
	if pt, ok := projection.PartitionFrom(ctx); ok {
		return pt.Name
	}
	return "_"
}

func encodeCP(cp projection.Checkpoint) string {
	return strconv.FormatUint(uint64(cp.Position), 10) + ":" + strconv.Itoa(cp.Version)
}

func decodeCP(s string) (projection.Checkpoint, error) {
	if s == "" {
		return projection.Checkpoint{}, nil
	}
	pos, ver, ok := strings.Cut(s, ":")
	ver, _, _ = strings.Cut(ver, ":") // a writer's batch tag may follow
	p, err1 := strconv.ParseUint(pos, 10, 64)
	v, err2 := strconv.Atoi(ver)
	if !ok || err1 != nil || err2 != nil {
		return projection.Checkpoint{}, fmt.Errorf("redisstore: malformed checkpoint %q", s)
	}
	return projection.Checkpoint{Position: event.Position(p), Version: v}, nil
}

// live returns the live writer, resolving the generation on first use.
// p.mu must be held.
func (p *Projector) live(ctx context.Context) (*writer, error) {
	if p.w == nil || p.w.stale {
		g, err := p.ns.Generation(ctx)
		if err != nil {
			return nil, err
		}
		p.w = p.newWriter(g)
	}
	return p.w, nil
}

// part returns the loaded state of field.
func (w *writer) part(ctx context.Context, f string) (*part, error) {
	pt := w.parts[f]
	if pt == nil {
		pt = &part{}
		w.parts[f] = pt
	}
	if !pt.loaded {
		raw, err := w.p.ns.rdb.HGet(ctx, w.p.ns.genPrefix(w.gen)+"cp", f).Result()
		if errors.Is(err, redis.Nil) {
			raw, err = "", nil
		}
		if err != nil {
			return nil, wrap("load checkpoint", err)
		}
		cp, err := decodeCP(raw)
		if err != nil {
			return nil, err
		}
		if cp.Position < pt.durable.Position && pt.lost == nil {
			pt.lost = &store.ConflictError{Table: w.p.ns.base + ":checkpoints", Key: f, Expected: uint64(pt.durable.Position), Actual: uint64(cp.Position)}
			pt.lost = fmt.Errorf("redisstore: %s: the stored checkpoint went back (Redis lost its last writes); load the checkpoint again: %w", w.p.ns.base, pt.lost)
		}
		pt.loaded, pt.durable, pt.raw, pt.tx = true, cp, raw, nil
	}
	return pt, nil
}

// busy reports whether a partition other than f has a batch in hand.
func (w *writer) busy(f string) bool {
	for g, pt := range w.parts {
		if g != f && pt.tx != nil && pt.tx.last > pt.durable.Position {
			return true
		}
	}
	return false
}

func (w *writer) newTx(from event.Position) *Tx {
	return &Tx{ns: w.p.ns, gen: w.gen, pre: w.p.ns.genPrefix(w.gen), last: from}
}

// LoadCheckpoint implements projection.SelfCheckpointer: the checkpoint of
// ctx's partition, read from Redis. It drops that partition's batch in
// hand (other partitions keep theirs).
func (p *Projector) LoadCheckpoint(ctx context.Context) (projection.Checkpoint, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := field(ctx)
	if p.w != nil && !p.w.busy(f) {
		p.w = nil // resolve the generation again: another process may have rebuilt
	}
	w, err := p.live(ctx)
	if err != nil {
		return projection.Checkpoint{}, err
	}
	delete(w.parts, f) // start over from what Redis has
	pt, err := w.part(ctx, f)
	if err != nil {
		return projection.Checkpoint{}, err
	}
	return pt.durable, nil
}

// Handle implements projection.Projector: it skips a record at or below
// the checkpoint (a redelivery) and buffers the writes of apply otherwise.
// If apply fails, its writes are dropped and the rest of the batch kept.
func (p *Projector) Handle(ctx context.Context, rec event.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, err := p.live(ctx)
	if err != nil {
		return err
	}
	return w.handle(ctx, rec)
}

func (w *writer) handle(ctx context.Context, rec event.Record) error {
	pt, err := w.part(ctx, field(ctx))
	if err != nil {
		return err
	}
	if pt.lost != nil {
		return nil // FlushBatch reports it; nothing of the batch counts
	}
	if pt.tx == nil {
		pt.tx = w.newTx(pt.durable.Position)
	}
	tx := pt.tx
	if rec.Position <= tx.last {
		return nil
	}
	sp := tx.savepoint()
	if err := w.p.apply(context.WithValue(ctx, txKey{}, tx), tx, rec); err != nil {
		tx.rollback(sp)
		return err
	}
	tx.last = rec.Position
	return nil
}

// FlushBatch implements projection.BatchFlusher: it commits the buffered
// writes with pos as the checkpoint of ctx's partition, in one script.
func (p *Projector) FlushBatch(ctx context.Context, pos event.Position) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, err := p.live(ctx)
	if err != nil {
		return err
	}
	return w.flush(ctx, field(ctx), pos)
}

// flush commits field's batch with checkpoint pos.
func (w *writer) flush(ctx context.Context, f string, pos event.Position) error {
	pt, err := w.part(ctx, f)
	if err != nil {
		return err
	}
	if pt.lost != nil {
		pt.tx = nil
		return pt.lost
	}
	tx := pt.tx
	pt.tx = nil
	if tx == nil {
		tx = w.newTx(pt.durable.Position)
	}
	to := projection.Checkpoint{Position: pos, Version: w.p.version}
	if to == pt.durable && len(tx.ops) == 0 {
		return nil
	}
	fence, fenced := projection.FenceFrom(ctx)
	fk := ""
	if fenced {
		fk = leaseKey(w.p.ns.prefix, fence.Name)
	}
	// The stored checkpoint carries a tag unique to this batch, so that a
	// retried commit whose first attempt did run recognises its own
	// checkpoint, while a batch of another writer that reached the same
	// position is still a conflict.
	w.p.batches++
	toRaw := encodeCP(to) + ":" + w.p.tag + "." + strconv.FormatUint(w.p.batches, 36)
	res, err := tx.commit(ctx, f, pt.raw, toRaw, true, fk, fence.Token, !w.shadow)
	if err != nil {
		// The script may or may not have run: load the checkpoint again
		// before the next batch, which then skips what did commit.
		pt.loaded = false
		return err
	}
	return w.result(ctx, pt, res, f, toRaw, fence, func() { pt.durable, pt.raw = to, toRaw })
}

// result turns a commit result into an error, or runs ok.
func (w *writer) result(ctx context.Context, pt *part, res commitResult, f, target string, fence projection.Lease, ok func()) error {
	switch res.status {
	case "ok":
		ok()
		return nil
	case "fenced":
		cur, _ := strconv.ParseUint(res.detail, 10, 64)
		if cur == 0 && w.foreignLease(ctx, fence) {
			return &ForeignLeaseError{Name: fence.Name, Token: fence.Token}
		}
		return &projection.FencedError{Name: fence.Name, Token: fence.Token, Current: cur}
	case "conflict":
		if res.detail == target {
			// The checkpoint is the one this batch writes: an earlier
			// attempt of it committed and its reply was lost (the
			// client retried after a dropped connection).
			ok()
			return nil
		}
		pt.loaded = false
		actual, _ := decodeCP(res.detail)
		return &store.ConflictError{Table: w.p.ns.base + ":checkpoints", Key: f, Expected: uint64(pt.durable.Position), Actual: uint64(actual.Position)}
	case "generation":
		pt.loaded = false
		w.stale = true
		cur, _ := strconv.ParseUint(res.detail, 10, 64)
		return &store.ConflictError{Table: w.p.ns.base + ":generation", Key: f, Expected: w.gen, Actual: cur}
	}
	return fmt.Errorf("redisstore: commit: unexpected result %q", res.status)
}

// Replay implements projection.Replayer: it applies rec and commits its
// writes at once, whatever the checkpoint, which does not move. The lease
// in ctx, if any, is checked as in FlushBatch.
func (p *Projector) Replay(ctx context.Context, rec event.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, err := p.live(ctx)
	if err != nil {
		return err
	}
	tx := w.newTx(0)
	if err := p.apply(context.WithValue(ctx, txKey{}, tx), tx, rec); err != nil {
		return err
	}
	fence, fenced := projection.FenceFrom(ctx)
	fk := ""
	if fenced {
		fk = leaseKey(p.ns.prefix, fence.Name)
	}
	res, err := tx.commit(ctx, field(ctx), "", "", false, fk, fence.Token, !w.shadow)
	if err != nil {
		return err
	}
	return w.result(ctx, &part{}, res, field(ctx), "\x00", fence, func() {})
}

// Shadow implements projection.Rebuilder. The shadow writes a new
// generation, which readers do not see, committing every few thousand
// operations with its own checkpoint; Swap makes it the current generation
// in one SET and deletes the old generation in the background. If Redis
// is unreachable at the swap, the projector writes the new generation
// anyway and its next commit switches the readers (the commit script moves
// the generation key forward).
func (p *Projector) Shadow(ctx context.Context) (projection.Shadow, error) {
	if err := ctx.Err(); err != nil {
		return projection.Shadow{}, err
	}
	n, err := nextGenScript.Run(ctx, p.ns.rdb, nil, p.ns.genKey(), p.ns.gensKey()).Uint64()
	if err != nil {
		return projection.Shadow{}, wrap("allocate generation", err)
	}
	// Keys of a generation above the current one are left by a rebuild
	// that crashed before its swap.
	if err := p.ns.dropGenerations(ctx, func(g uint64) bool { return g >= n }); err != nil {
		return projection.Shadow{}, err
	}
	sw := p.newWriter(n)
	sw.shadow = true
	var smu sync.Mutex
	handle := event.HandlerFunc(func(ctx context.Context, rec event.Record) error {
		smu.Lock()
		defer smu.Unlock()
		if err := sw.handle(ctx, rec); err != nil {
			return err
		}
		pt := sw.parts[field(ctx)]
		if pt.tx != nil && len(pt.tx.ops) >= p.chunk {
			return sw.flush(ctx, field(ctx), pt.tx.last)
		}
		return nil
	})
	flush := func(ctx context.Context) error {
		smu.Lock()
		defer smu.Unlock()
		for f, pt := range sw.parts {
			if pt.tx != nil && pt.tx.last > pt.durable.Position {
				if err := sw.flush(ctx, f, pt.tx.last); err != nil {
					return err
				}
			}
		}
		return nil
	}
	swap := func() {
		smu.Lock()
		defer smu.Unlock()
		p.cmu.Lock() // no Close between Add and the goroutine's start
		p.mu.Lock()
		sw.shadow = false
		p.w = sw
		stop := p.stop
		p.bg.Add(1)
		p.mu.Unlock()
		p.cmu.Unlock()
		// Switch readers now, so that a query right after Rebuild reads
		// the new generation; if Redis does not answer, the background
		// goroutine (and the next commit) finish the switch.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := switchScript.Run(ctx, p.ns.rdb, nil, p.ns.genKey(), n).Err()
		cancel()
		go p.switchAndClean(n, err == nil, stop)
	}
	return projection.Shadow{Handler: handle, Flush: flush, Swap: swap}, nil
}

// dropTimeout bounds the deletion of the generations a rebuild replaced.
// Close does not cancel a deletion in progress (nothing else would delete
// those keys later), but waits for it at most this long.
const dropTimeout = 30 * time.Second

// switchAndClean switches readers to generation n, retrying while Redis
// is unreachable (until Close), and then deletes older generations.
func (p *Projector) switchAndClean(n uint64, switched bool, stop <-chan struct{}) {
	defer p.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	drop := func(below uint64) {
		// Not ctx: a Close during the deletion would leave the old
		// generation's keys in Redis for good. The deletion ends by
		// itself, or at the first error (Redis unreachable).
		dctx, dcancel := context.WithTimeout(context.Background(), dropTimeout)
		defer dcancel()
		_ = p.ns.dropGenerations(dctx, func(g uint64) bool { return g < below })
	}
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		if switched {
			drop(n)
			return
		}
		cur, err := switchScript.Run(ctx, p.ns.rdb, nil, p.ns.genKey(), n).Uint64()
		if err == nil {
			drop(cur)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// Close cancels background work that waits for Redis (a generation switch
// Redis did not take yet) and waits for it; a deletion of the generations a
// rebuild replaced, once started, is finished first (at most dropTimeout),
// so that their keys do not stay in Redis. It does not
// close the Redis client. The projector stays usable: a later rebuild
// starts new background work.
func (p *Projector) Close() error {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	p.mu.Lock()
	stop := p.stop
	p.stop = make(chan struct{})
	p.mu.Unlock()
	close(stop)
	p.bg.Wait()
	return nil
}

// dropGenerations deletes, with SCAN and UNLINK, the keys of every
// generation for which drop is true.
func (ns *Namespace) dropGenerations(ctx context.Context, drop func(uint64) bool) error {
	pattern := escapeGlob(ns.base) + ":g*"
	var cursor uint64
	for {
		keys, next, err := ns.rdb.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return wrap("scan generations", err)
		}
		var del []string
		for _, k := range keys {
			rest := strings.TrimPrefix(k, ns.base+":g")
			num, _, ok := strings.Cut(rest, ":")
			if !ok {
				continue
			}
			g, err := strconv.ParseUint(num, 10, 64)
			if err == nil && drop(g) {
				del = append(del, k)
			}
		}
		if len(del) > 0 {
			if err := ns.rdb.Unlink(ctx, del...).Err(); err != nil {
				return wrap("delete old generation", err)
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// foreignLease reports whether this Redis never issued a lease on
// fence.Name: its token counter, which Leases never deletes, is missing.
// Then the fence comes from another lease store and no batch can ever
// commit, which must not pass for a lost lease (the runner would stand by
// silently, forever).
func (w *writer) foreignLease(ctx context.Context, fence projection.Lease) bool {
	n, err := w.p.ns.rdb.Exists(ctx, tokenKey(w.p.ns.prefix, fence.Name)).Result()
	return err == nil && n == 0
}

// ErrForeignLease matches a *ForeignLeaseError.
var ErrForeignLease = errors.New("redisstore: the projector's lease is not from this Redis")

// ForeignLeaseError is returned by a Projector's FlushBatch and Replay when
// the runner's fence names a lease that this Redis never issued: the runner
// was given a projection.Leaser other than redisstore.Leases on the
// projector's prefix (pgstore's, say). The commit script can only check a
// lease stored next to the view it writes, so every batch would be
// refused; give the runner NewLeases(client, ns.Prefix()) instead. It is a
// configuration error, not a lost lease, so it does not match
// projection.ErrFenced.
type ForeignLeaseError struct {
	// Name is the lease name from the fence.
	Name string
	// Token is the fencing token from the fence.
	Token uint64
}

func (e *ForeignLeaseError) Error() string {
	return fmt.Sprintf("redisstore: lease %q (token %d) was not issued by this Redis: run the projector with redisstore.Leases on the same prefix", e.Name, e.Token)
}

// Is makes a *ForeignLeaseError match ErrForeignLease.
func (e *ForeignLeaseError) Is(target error) bool { return target == ErrForeignLease }
