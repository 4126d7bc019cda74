package event

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Bus is a synchronous in-process publish/subscribe bus. Publish calls every
// subscriber in subscription order on the caller's goroutine. The zero value is
// ready to use.
//
// The bus does not order concurrent Publish calls; the projection runner feeds
// it from the committed log, which is what makes deliveries arrive in commit
// order (see projection.Runner).
type Bus struct {
	mu   sync.Mutex // serialises Subscribe/unsubscribe
	subs atomic.Pointer[[]*subscription]
}

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

// Publish delivers rec to every subscriber. A failing subscriber does not stop
// delivery to the others; their errors are joined.
func (b *Bus) Publish(ctx context.Context, rec Record) error {
	p := b.subs.Load()
	if p == nil {
		return nil
	}
	var errs []error
	for _, s := range *p {
		if err := s.h.Handle(ctx, rec); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
