package event

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

// Bus is a synchronous in-process publish/subscribe bus. Publish calls every
// subscriber in subscription order on the caller's goroutine. The zero value is
// ready to use.
//
// The bus does not order concurrent Publish calls; the projection runner feeds
// it from the committed log, which is what makes deliveries arrive in commit
// order (see projection.Runner).
//
// # Retries
//
// When some subscribers fail on a record, the bus remembers which ones
// handled it (by Record.ID). Publishing that record again, as a runner does
// when it retries (projection.WithRetry) or replays a parked event, delivers
// it only to the subscribers that have not handled it yet, so each
// subscriber sees each record once however often the failing one is
// retried. Once every subscriber has handled the record the bus forgets it,
// and a later publication (a rebuild's replay) reaches every subscriber
// again. Records with a zero ID are not tracked. The bus remembers at most
// MaxPending partially delivered records; beyond that the oldest is
// forgotten and would be delivered to all on a retry.
type Bus struct {
	mu   sync.Mutex // serialises Subscribe/unsubscribe
	subs atomic.Pointer[[]*subscription]

	npending atomic.Int32 // len(pending), read without pmu on the fast path
	pmu      sync.Mutex   // guards pending and order
	pending  map[uuid.UUID]map[*subscription]struct{}
	order    []uuid.UUID // pending IDs, oldest first
}

// MaxPending bounds how many partially delivered records a Bus remembers.
const MaxPending = 4096

type subscription struct{ h Handler }

var _ Handler = (*Bus)(nil)

// Subscribe adds h and returns a function that removes it. Publishing never
// waits on Subscribe: subscribers are kept in a copy-on-write list.
func (b *Bus) Subscribe(h Handler) (unsubscribe func()) {
	s := &subscription{h: h}
	b.mu.Lock()
	defer b.mu.Unlock()
	var cur []*subscription
	if p := b.subs.Load(); p != nil {
		cur = *p
	}
	next := make([]*subscription, len(cur), len(cur)+1)
	copy(next, cur)
	next = append(next, s)
	b.subs.Store(&next)
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		cur := *b.subs.Load()
		next := make([]*subscription, 0, len(cur))
		for _, x := range cur {
			if x != s {
				next = append(next, x)
			}
		}
		b.subs.Store(&next)
	}
}

// Publish delivers rec to every subscriber that has not handled it yet (see
// Retries). A failing subscriber does not stop delivery to the others; their
// errors are joined.
func (b *Bus) Publish(ctx context.Context, rec Record) error {
	p := b.subs.Load()
	if p == nil {
		return nil
	}
	track := rec.ID != uuid.Nil
	var done map[*subscription]struct{}
	if track && b.npending.Load() > 0 {
		done = b.donePart(rec.ID)
	}
	var errs []error
	var ok []*subscription // subscribers that handled rec now, kept only on failure
	for i, s := range *p {
		if _, had := done[s]; had {
			continue
		}
		if err := s.h.Handle(ctx, rec); err != nil {
			if errs == nil && track {
				ok = append(ok, (*p)[:i]...) // everyone before s succeeded (or had it)
			}
			errs = append(errs, err)
		} else if errs != nil && track {
			ok = append(ok, s)
		}
	}
	if track && (errs != nil || done != nil) {
		b.settle(rec.ID, ok, errs == nil)
	}
	return errors.Join(errs...)
}

// donePart returns a copy of the subscribers that have handled id, or nil.
func (b *Bus) donePart(id uuid.UUID) map[*subscription]struct{} {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	set := b.pending[id]
	if set == nil {
		return nil
	}
	out := make(map[*subscription]struct{}, len(set))
	for s := range set {
		out[s] = struct{}{}
	}
	return out
}

// settle records that the subscribers in ok handled id; when complete,
// every subscriber has it and id is forgotten.
func (b *Bus) settle(id uuid.UUID, ok []*subscription, complete bool) {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	set, known := b.pending[id]
	if complete {
		if known {
			delete(b.pending, id)
			for i, x := range b.order {
				if x == id {
					b.order = append(b.order[:i], b.order[i+1:]...)
					break
				}
			}
		}
		b.npending.Store(int32(len(b.pending)))
		return
	}
	if !known {
		if b.pending == nil {
			b.pending = make(map[uuid.UUID]map[*subscription]struct{})
		}
		if len(b.order) >= MaxPending {
			delete(b.pending, b.order[0])
			b.order = b.order[1:]
		}
		set = make(map[*subscription]struct{}, len(ok))
		b.pending[id] = set
		b.order = append(b.order, id)
	}
	for _, s := range ok {
		set[s] = struct{}{}
	}
	b.npending.Store(int32(len(b.pending)))
}

// Handle is Publish, so a Bus can be fed like a projector.
func (b *Bus) Handle(ctx context.Context, rec Record) error { return b.Publish(ctx, rec) }

// Subscribe registers a typed subscriber for events of type E on b and returns
// its unsubscribe function.
func Subscribe[E Event](b *Bus, fn func(ctx context.Context, rec Record, e E) error) (unsubscribe func()) {
	var r Router
	On(&r, fn)
	return b.Subscribe(&r)
}
