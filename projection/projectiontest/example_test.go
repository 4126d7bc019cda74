package projectiontest_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection/projectiontest"
)

// Reviewed is a domain event: a customer rated a product.
type Reviewed struct{ Stars int }

func (Reviewed) EventType() string { return "catalog.reviewed" }

// ratingView keeps the number of reviews and the star total per product
// stream.
type ratingView struct {
	event.Router
	mu    sync.Mutex
	count map[string]int
	stars map[string]int
}

func newRatingView() *ratingView {
	v := &ratingView{count: map[string]int{}, stars: map[string]int{}}
	event.On(&v.Router, func(_ context.Context, rec event.Record, e Reviewed) error {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.count[rec.Stream]++
		v.stars[rec.Stream] += e.Stars
		return nil
	})
	return v
}

func (v *ratingView) Name() string { return "rating" }

// Average returns the mean rating of a product stream.
func (v *ratingView) Average(stream string) float64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.count[stream] == 0 {
		return 0
	}
	return float64(v.stars[stream]) / float64(v.count[stream])
}

// printT stands in for the *testing.T a real test passes; it prints what
// the fixture reports.
type printT struct{}

func (printT) Helper()                           {}
func (printT) Errorf(format string, args ...any) { fmt.Printf("FAIL: "+format+"\n", args...) }
func (printT) Fatalf(format string, args ...any) { fmt.Printf("FATAL: "+format+"\n", args...) }

// In a test, pass t; the given events become records at positions 1, 2, 3
// on the streams chosen with On, and Then compares the view with what is
// expected.
func Example() {
	t := printT{} // in a test: the *testing.T
	v := newRatingView()
	f := projectiontest.Given(t, v,
		projectiontest.On("product/p1", Reviewed{Stars: 5}),
		projectiontest.On("product/p1", Reviewed{Stars: 2}),
		projectiontest.On("product/p2", Reviewed{Stars: 4}),
	)
	f.Then("p1 average", v.Average("product/p1"), 3.5).
		Then("p2 average", v.Average("product/p2"), 4.0)

	f.When(projectiontest.On("product/p2", Reviewed{Stars: 1}))
	f.Then("p2 average", v.Average("product/p2"), 3.0) // wrong on purpose

	last := f.Records()[f.Position()-1]
	fmt.Println(last.Position, last.Stream, last.Version, last.Time.Format("15:04:05"))
	// Output:
	// FAIL: p2 average: got 2.5, want 3
	// 4 product/p2 2 00:00:03
}
