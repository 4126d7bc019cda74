package projection_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// counter is a trivial projector: the cost measured is the runner's.
type counter struct {
	name string
	cur  atomic.Pointer[int64]
}

func newCounter(name string) *counter {
	c := &counter{name: name}
	c.cur.Store(new(int64))
	return c
}

func (c *counter) Name() string { return c.name }

func (c *counter) Handle(_ context.Context, _ event.Record) error {
	*c.cur.Load()++ // one goroutine at a time
	return nil
}

func (c *counter) Shadow(context.Context) (projection.Shadow, error) {
	n := new(int64)
	return projection.Shadow{
		Handler: event.HandlerFunc(func(context.Context, event.Record) error { *n++; return nil }),
		Swap:    func() { c.cur.Store(n) },
	}, nil
}

func benchBus(st store.Store, opts ...command.Option) *command.Bus {
	bus := command.New(st, opts...)
	command.Register(bus, func(_ context.Context, tx store.Tx, c addCmd) error {
		tx.Record(c.Stream, added{N: c.N})
		return nil
	})
	return bus
}

// BenchmarkInlineSync measures what an inline projector adds to a dispatch:
// the baseline is the same dispatch without a syncer, in the same run.
func BenchmarkInlineSync(b *testing.B) {
	ctx := context.Background()
	cmd := addCmd{Stream: "s", N: 1}
	b.Run("dispatch/baseline", func(b *testing.B) {
		st := newMemory(b)
		bus := benchBus(st)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bus.Dispatch(ctx, cmd); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("dispatch/inline", func(b *testing.B) {
		st := newMemory(b)
		r := projection.NewRunner(st)
		if err := r.Add(newCounter("c")); err != nil {
			b.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		bus := benchBus(st, command.WithSyncer(r))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bus.Dispatch(ctx, cmd); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	// Sync alone: the events are committed first, outside the timer, then
	// Sync applies them one position at a time, as after each dispatch.
	b.Run("sync", func(b *testing.B) {
		st := newMemory(b)
		r := projection.NewRunner(st)
		if err := r.Add(newCounter("c")); err != nil {
			b.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		appendN(b, st, b.N, 1000)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 1; i <= b.N; i++ {
			if err := r.Sync(ctx, event.Position(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// filled returns a Memory log of n events.
func filled(b *testing.B, n int) (*store.Memory, event.Position) {
	b.Helper()
	st := newMemory(b)
	return st, appendN(b, st, n, 1000)
}

const benchEvents = 1_000_000

// BenchmarkAsyncThroughput projects a pre-filled log of 1M events through a
// trivial async projector: Start, catch up, Close.
func BenchmarkAsyncThroughput(b *testing.B) {
	ctx := context.Background()
	st, head := filled(b, benchEvents)
	for _, batch := range []int{256, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := projection.NewRunner(st, projection.WithBatchSize(batch))
				c := newCounter("c")
				if err := r.Add(c, projection.AsAsync()); err != nil {
					b.Fatal(err)
				}
				if err := r.Start(ctx); err != nil {
					b.Fatal(err)
				}
				if err := r.WaitFor(ctx, "c", head); err != nil {
					b.Fatal(err)
				}
				r.Close()
				if *c.cur.Load() != benchEvents {
					b.Fatalf("projected %d events", *c.cur.Load())
				}
			}
			b.ReportMetric(float64(b.N)*benchEvents/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRebuild rebuilds a trivial projector from a log of 1M events.
func BenchmarkRebuild(b *testing.B) {
	ctx := context.Background()
	st, _ := filled(b, benchEvents)
	r := projection.NewRunner(st)
	c := newCounter("c")
	if err := r.Add(c); err != nil {
		b.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Rebuild(ctx, "c"); err != nil {
			b.Fatal(err)
		}
	}
	if *c.cur.Load() != benchEvents {
		b.Fatalf("rebuilt %d events", *c.cur.Load())
	}
	b.ReportMetric(float64(b.N)*benchEvents/b.Elapsed().Seconds(), "events/s")
}
