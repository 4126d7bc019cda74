package catalog

import (
	"context"
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
	// The View gives Trending its Name, Handle and Shadow: it is a
	// rebuildable projector over the map of recent review times.
	*projection.View[recentReviews]
}

// recentReviews holds, per product, the times of its latest reviews.
type recentReviews = readmodel.Map[string, readmodel.Recent[time.Time]]

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
	t.View = projection.NewView("catalog.trending", readmodel.NewMap[string, readmodel.Recent[time.Time]],
		func(r *event.Router, m *recentReviews) {
			event.On(r, func(_ context.Context, rec event.Record, e ReviewSubmitted) error {
				m.Update(e.ProductID, func(r readmodel.Recent[time.Time], ok bool) (readmodel.Recent[time.Time], bool) {
					if !ok {
						r = readmodel.NewRecent[time.Time](t.Threshold)
					}
					return r.Push(rec.Time), true
				})
				return nil
			})
		})
	return t
}

// IsTrending reports whether the product had at least Threshold reviews in
// the Window before now.
func (t *Trending) IsTrending(productID string, now time.Time) bool {
	r, ok := t.View.Load().Load(productID)
	if !ok || r.Len() < t.Threshold {
		return false
	}
	// The oldest of the last Threshold reviews must fall inside the window.
	return now.Sub(r.At(r.Len()-1)) <= t.Window
}
