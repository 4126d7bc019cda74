package projection_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/projection"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestMemoryLeasesClock checks expiry against the injected clock, to the
// instant: a lease is live strictly before Expires and lapsed at it.
func TestMemoryLeasesClock(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := projection.NewMemoryLeases(clk.Now)
	a, err := l.Acquire(ctx, "p", "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(time.Second); !a.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v", a.Expires, want)
	}
	clk.Add(999 * time.Millisecond)
	if _, err := l.Acquire(ctx, "p", "b", time.Second); !errors.Is(err, projection.ErrLeaseHeld) {
		t.Fatalf("Acquire 1ms before expiry: %v, want ErrLeaseHeld", err)
	}
	if a, err = l.Renew(ctx, a, time.Second); err != nil {
		t.Fatalf("Renew 1ms before expiry: %v", err)
	}
	clk.Add(time.Second)
	if h, _ := l.Holder(ctx, "p"); h.Owner != "" {
		t.Errorf("Holder at expiry = %+v, want free", h)
	}
	if err := l.SaveFenced(ctx, "p", projection.Checkpoint{Position: 1}, a); !errors.Is(err, projection.ErrFenced) {
		t.Errorf("SaveFenced at expiry: %v, want ErrFenced", err)
	}
	b, err := l.Acquire(ctx, "p", "b", time.Second)
	if err != nil || b.Token != a.Token+1 {
		t.Fatalf("Acquire at expiry = %+v, %v; want token %d", b, err, a.Token+1)
	}
	if err := l.SaveFenced(ctx, "p", projection.Checkpoint{Position: 1}, b); err != nil {
		t.Errorf("SaveFenced by the new holder: %v", err)
	}
	if cp, _ := l.Load(ctx, "p"); cp.Position != 1 {
		t.Errorf("checkpoint = %+v, want position 1", cp)
	}
}
