package redisstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/projection/leasetest"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
)

func TestLeasesConformance(t *testing.T) {
	c := client(t)
	leasetest.Run(t, func(t *testing.T) leasetest.Target {
		l := redisstore.NewLeases(c, testPrefix(t, c))
		return leasetest.Target{Leases: l, Checkpoints: l}
	})
}

// TestProjectorFenced: a projector's commit carries the lease from its
// context; once another owner took the lease, the stale owner's batch is
// refused with a *projection.FencedError and writes nothing.
func TestProjectorFenced(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "fenced")
	leases := redisstore.NewLeases(c, ns.Prefix())
	cv := newCounter(ns)
	ctx := context.Background()
	a, err := leases.Acquire(ctx, "fenced", "a", leasetest.Long)
	if err != nil {
		t.Fatal(err)
	}
	pa := cv.projector()
	actx := projection.WithFence(ctx, a)
	rec := func(pos event.Position) event.Record {
		return event.Record{Position: pos, Stream: "s", Data: added{N: 1}}
	}
	if err := pa.Handle(actx, rec(1)); err != nil {
		t.Fatal(err)
	}
	if err := pa.FlushBatch(actx, 1); err != nil {
		t.Fatalf("FlushBatch by the holder: %v", err)
	}
	// a pauses past its lease (here: releases it), b takes over.
	if err := leases.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
	b, err := leases.Acquire(ctx, "fenced", "b", leasetest.Long)
	if err != nil {
		t.Fatal(err)
	}
	if err := pa.Handle(actx, rec(2)); err != nil {
		t.Fatal(err)
	}
	err = pa.FlushBatch(actx, 2)
	var fe *projection.FencedError
	if !errors.As(err, &fe) || !errors.Is(err, projection.ErrFenced) || fe.Current != b.Token || fe.Token != a.Token {
		t.Fatalf("stale owner's FlushBatch: %v, want a *FencedError with current token %d", err, b.Token)
	}
	checkCounts(t, cv, model{"s": 1, totalKey: 1})
	pb := cv.projector()
	bctx := projection.WithFence(ctx, b)
	if _, err := pb.LoadCheckpoint(bctx); err != nil {
		t.Fatal(err)
	}
	if err := pb.Handle(bctx, rec(2)); err != nil {
		t.Fatal(err)
	}
	if err := pb.FlushBatch(bctx, 2); err != nil {
		t.Fatalf("new owner's FlushBatch: %v", err)
	}
	checkCounts(t, cv, model{"s": 2, totalKey: 2})
	if err := pa.Replay(actx, rec(3)); !errors.Is(err, projection.ErrFenced) {
		t.Fatalf("stale owner's Replay: %v, want ErrFenced", err)
	}
}

// A fence from another lease store (here projection.MemoryLeases) can never
// be checked by the commit script: FlushBatch says so with a configuration
// error instead of a *FencedError, which a runner would take for a lost
// lease and stand by on, silently, forever.
func TestProjectorForeignLease(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "foreign")
	cv := newCounter(ns)
	ctx := context.Background()
	foreign, err := projection.NewMemoryLeases(nil).Acquire(ctx, "foreign", "a", leasetest.Long)
	if err != nil {
		t.Fatal(err)
	}
	p := cv.projector()
	fctx := projection.WithFence(ctx, foreign)
	if err := p.Handle(fctx, event.Record{Position: 1, Stream: "s", Data: added{N: 1}}); err != nil {
		t.Fatal(err)
	}
	err = p.FlushBatch(fctx, 1)
	var fe *redisstore.ForeignLeaseError
	if !errors.As(err, &fe) || !errors.Is(err, redisstore.ErrForeignLease) || fe.Name != "foreign" || fe.Token != foreign.Token {
		t.Fatalf("FlushBatch under a foreign lease: %v, want a *ForeignLeaseError", err)
	}
	if errors.Is(err, projection.ErrFenced) {
		t.Fatalf("a foreign lease must not pass for a lost one: %v", err)
	}
	checkCounts(t, cv, model{})

	// A lease this Redis issued and then lost is still a *FencedError.
	leases := redisstore.NewLeases(c, ns.Prefix())
	own, err := leases.Acquire(ctx, "foreign", "b", leasetest.Long)
	if err != nil {
		t.Fatal(err)
	}
	if err := leases.Release(ctx, own); err != nil {
		t.Fatal(err)
	}
	p = cv.projector()
	octx := projection.WithFence(ctx, own)
	if err := p.Handle(octx, event.Record{Position: 1, Stream: "s", Data: added{N: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := p.FlushBatch(octx, 1); !errors.Is(err, projection.ErrFenced) {
		t.Fatalf("FlushBatch under a released lease: %v, want ErrFenced", err)
	}
}
