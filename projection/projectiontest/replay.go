package projectiontest

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// ReplayEvent is the event RunReplay records. A store whose log decodes
// payloads through a registry must register it.
type ReplayEvent struct {
	N int `json:"n"`
}

// EventType implements event.Event.
func (ReplayEvent) EventType() string { return "projectiontest.replay" }

// ReplayHarness is what RunReplay needs from one projector kind.
type ReplayHarness struct {
	// Store records the events; Log is its log.
	Store store.Store
	Log   store.Log
	// Checkpoints is given to the runner (nil: a new MemoryCheckpoints).
	Checkpoints projection.CheckpointStore
	// NewProjector returns a projector named name whose read model records
	// each record it applies. It must call check first, as part of
	// applying the record: when check returns an error the record is not
	// applied and Handle returns that error. applied lists the positions
	// in the read model, in any order.
	NewProjector func(t *testing.T, name string, check func(ctx context.Context, rec event.Record) error) (p projection.Projector, applied func() []event.Position)
}

// RunReplay is the conformance case for Runner.Replay, shaped like
// testing/slogtest.Run: any projector kind
// (plain, self-checkpointing such as pgstore.NewProjector, ...) runs it. A
// projector under policy Park fails on the second of three events, so that
// event is parked while the third moves the projector (and its checkpoint)
// past it. Replay while the fault persists must fail and keep the event
// parked; Replay after the fault is fixed must apply the event to the read
// model and only then unpark it. It runs once with the projector inline and
// once async.
func RunReplay(t *testing.T, newHarness func(t *testing.T) ReplayHarness) {
	for _, mode := range []projection.Mode{projection.Inline, projection.Async} {
		t.Run(mode.String(), func(t *testing.T) {
			testReplay(t, newHarness(t), mode)
		})
	}
}

var errReplayFault = errors.New("projectiontest: injected fault")

func testReplay(t *testing.T, h ReplayHarness, mode projection.Mode) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var failing atomic.Bool
	failing.Store(true)
	check := func(_ context.Context, rec event.Record) error {
		if e, ok := rec.Data.(ReplayEvent); ok && e.N == 2 && failing.Load() {
			return errReplayFault
		}
		return nil
	}
	name := "replay_" + mode.String()
	p, applied := h.NewProjector(t, name, check)
	var opts []projection.Option
	if h.Checkpoints != nil {
		opts = append(opts, projection.WithCheckpoints(h.Checkpoints))
	}
	r := projection.NewRunner(h.Log, opts...)
	defer func() { _ = r.Close() }()
	addOpts := []projection.AddOption{projection.WithPolicy(projection.Park), projection.WithRetry(1, nil)}
	if mode == projection.Async {
		addOpts = append(addOpts, projection.AsAsync())
	}
	if err := r.Add(p, addOpts...); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var pos [4]event.Position
	for n := 1; n <= 3; n++ {
		var err error
		pos[n], err = h.Store.Update(ctx, func(tx store.Tx) error {
			tx.Record("projectiontest/replay", ReplayEvent{N: n})
			return nil
		})
		if err != nil {
			t.Fatalf("Update %d: %v", n, err)
		}
	}
	if err := r.WaitFor(ctx, name, pos[3]); err != nil {
		t.Fatalf("WaitFor(%v): %v", pos[3], err)
	}
	has := func(p event.Position) bool { return slices.Contains(applied(), p) }
	if !has(pos[1]) || !has(pos[3]) || has(pos[2]) {
		t.Fatalf("applied %v, want %v and %v but not %v", applied(), pos[1], pos[3], pos[2])
	}
	parked, err := r.Parked(name)
	if err != nil || len(parked) != 1 || parked[0].Record.Position != pos[2] {
		t.Fatalf("Parked = %v, %v; want the event at %v", parked, err, pos[2])
	}

	// The fault persists: Replay fails visibly and keeps the event.
	if err := r.Replay(ctx, name, pos[2]); err == nil {
		t.Errorf("Replay while the projector still fails = nil, want its error")
	}
	if parked, _ := r.Parked(name); len(parked) != 1 {
		t.Errorf("after a failed Replay, Parked = %v, want the event at %v", parked, pos[2])
	}
	if has(pos[2]) {
		t.Errorf("a failed Replay applied %v", pos[2])
	}

	// Fixed: Replay applies it, or fails and keeps it parked.
	failing.Store(false)
	err = r.Replay(ctx, name, pos[2])
	parked, _ = r.Parked(name)
	switch {
	case err == nil && !has(pos[2]):
		t.Errorf("Replay(%v) = nil but the read model does not have it (applied %v): the event is lost", pos[2], applied())
	case err == nil && len(parked) != 0:
		t.Errorf("Replay(%v) = nil but the event is still parked: %v", pos[2], parked)
	case err != nil && len(parked) != 1:
		t.Errorf("Replay(%v) = %v and the event is no longer parked: lost", pos[2], err)
	case err != nil:
		t.Logf("Replay refused visibly: %v", err)
	}
	if err == nil {
		if n := len(applied()); n != 3 {
			t.Errorf("after Replay the read model has %d events (%v), want 3", n, applied())
		}
	}
}
