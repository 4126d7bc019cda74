package catalog

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/readmodel"
)

// Trending is a read model the write side knows nothing about: a "trending"
// badge from recent review velocity. It was added without touching a command,
// a table or an event, and rebuilding it from the log gives it the full
// history on its first start.
type Trending struct {
	// Window is the period over which reviews are counted, and Threshold
	// how many reviews in it earn the badge.
	Window    time.Duration
	Threshold int
	cur       atomic.Pointer[trendSet]
}

type trendSet struct {
	recent *readmodel.Map[string, readmodel.Recent[time.Time]]
	router event.Router
}

var (
	_ projection.Projector = (*Trending)(nil)
	_ projection.Rebuilder = (*Trending)(nil)
)

// NewTrending returns a Trending projector: a product trends with at least
// threshold reviews within window.
func NewTrending(window time.Duration, threshold int) *Trending {
	if threshold < 1 {
		threshold = 1
	}
	t := &Trending{Window: window, Threshold: threshold}
	t.cur.Store(t.newSet())
	return t
}

func (t *Trending) newSet() *trendSet {
	ts := &trendSet{recent: readmodel.NewMap[string, readmodel.Recent[time.Time]]()}
	event.On(&ts.router, func(_ context.Context, rec event.Record, e ReviewSubmitted) error {
		ts.recent.Update(e.ProductID, func(r readmodel.Recent[time.Time], ok bool) (readmodel.Recent[time.Time], bool) {
			if !ok {
				r = readmodel.NewRecent[time.Time](t.Threshold)
			}
			return r.Push(rec.Time), true
		})
		return nil
	})
	return ts
}

// Name implements projection.Projector.
func (t *Trending) Name() string { return "catalog.trending" }

// Handle implements projection.Projector.
func (t *Trending) Handle(ctx context.Context, rec event.Record) error {
	return t.cur.Load().router.Handle(ctx, rec)
}

// Shadow implements projection.Rebuilder.
func (t *Trending) Shadow(context.Context) (event.Handler, func(), error) {
	ts := t.newSet()
	return &ts.router, func() { t.cur.Store(ts) }, nil
}

// IsTrending reports whether the product had at least Threshold reviews in
// the Window before now.
func (t *Trending) IsTrending(productID string, now time.Time) bool {
	r, ok := t.cur.Load().recent.Load(productID)
	if !ok || r.Len() < t.Threshold {
		return false
	}
	// The oldest of the last Threshold reviews must fall inside the window.
	return now.Sub(r.At(r.Len()-1)) <= t.Window
}
