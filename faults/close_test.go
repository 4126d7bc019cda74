package faults_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// TestStuckHandlerClose closes a runner whose async handler never returns:
// Close must give up after its timeout and name the projector. It needs no
// PostgreSQL: the log is the in-memory store.
func TestStuckHandlerClose(t *testing.T) {
	st := store.NewMemory()
	t.Cleanup(func() { _ = st.Close() })
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // let the handler goroutine end
	stuck := projection.Named("stuck", event.HandlerFunc(func(context.Context, event.Record) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release // ignores its context on purpose
		return nil
	}))
	const timeout = 200 * time.Millisecond
	r := projection.NewRunner(st, projection.WithCloseTimeout(timeout))
	if err := r.Add(stuck, projection.AsAsync()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	record(t, st, Tick{})
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the handler was never called")
	}

	const bound = 400 * time.Millisecond
	took, err, ok := timed(3*time.Second, r.Close)
	tookStr := took.Round(time.Millisecond).String()
	if !ok {
		tookStr = ">3s"
	}
	summary(t, "stuck-handler", "close_timeout", timeout, "close_took", tookStr, "err_names_projector", err != nil && strings.Contains(err.Error(), "stuck"))
	switch {
	case !ok:
		t.Fatalf("Close still blocked after %v", took)
	case took > bound:
		t.Errorf("Close took %v, want within %v", took, bound)
	}
	if err == nil || !strings.Contains(err.Error(), "stuck") {
		t.Errorf("Close error %v does not name the stuck projector", err)
	}
}
