package projection

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Rebuild replays the whole log into a shadow read model while the live one
// keeps serving queries and receiving events, then swaps the shadow in
// atomically. Live delivery to this projector pauses only for the final
// stretch: catching the shadow up to the head and the swap. A successful
// rebuild also clears a Stop error (a stopped async projector resumes
// following the log), since the new view was built from every event, and
// replaces the dead-letter list with the events that failed during the
// replay (policy Park). It returns when the swap is done. Failing events
// are retried with the projector's retry settings, as in live delivery.
//
// Errors: a *StoppedError ([ErrStopped]) wrapping the failure of an event
// that failed all its retries during replay, or a *GapError (the live view
// is untouched);
// ctx.Err(); [store.ErrClosed] (also when Close interrupts it); plain
// errors for misuse: an unknown name, a projector that is not a Rebuilder,
// a rebuild of it already running, a runner not started, a partitioned
// projector, a leased projector whose lease another runner holds.
func (r *Runner) Rebuild(ctx context.Context, name string) error {
	if r.closed.Load() {
		return store.ErrClosed
	}
	pj, err := r.get(name)
	if err != nil {
		return err
	}
	if !r.ready.Load() {
		return errNotStarted
	}
	return r.rebuild(ctx, pj)
}

func (r *Runner) rebuild(ctx context.Context, pj *proj) error {
	rb, ok := pj.p.(Rebuilder)
	if !ok {
		return fmt.Errorf("%w: %s", errNotRebuildable, pj.name)
	}
	if pj.part != nil {
		return fmt.Errorf("projection: %s is one partition of a partitioned projector, which cannot be rebuilt", pj.name)
	}
	if pj.lease != nil && !pj.lease.owns() {
		return fmt.Errorf("%w: %s", errNotOwner, pj.name)
	}
	pj.health.Lock()
	if pj.health.rebuilding {
		pj.health.Unlock()
		return fmt.Errorf("%w: %s", errRebuilding, pj.name)
	}
	pj.health.rebuilding = true
	pj.health.Unlock()
	defer func() {
		pj.health.Lock()
		pj.health.rebuilding = false
		pj.health.Unlock()
	}()
	start := time.Now()
	shadow, err := rb.Shadow(ctx)
	if err != nil {
		return fmt.Errorf("projection: %s: shadow: %w", pj.name, err)
	}
	if shadow.Handler == nil || shadow.Swap == nil {
		return fmt.Errorf("projection: %s: Shadow returned no Handler or no Swap", pj.name)
	}
	buf := make([]event.Record, 0, max(r.batch, 1024))
	var spos event.Position
	var parked []DeadLetter
	// Phase 1: replay without holding up live delivery.
	if spos, err = r.replay(ctx, pj, shadow.Handler, spos, buf, &parked); err != nil {
		return err
	}
	if shadow.Flush != nil {
		if err := shadow.Flush(ctx); err != nil {
			return fmt.Errorf("projection: %s: flush shadow: %w", pj.name, err)
		}
	}
	// Phase 2: pause live delivery, finish the tail, swap. An async
	// projector holds the lock for a batch (and through an outage), so the
	// wait for it honours ctx.
	if err := pj.mu.LockCtx(ctx); err != nil {
		return err
	}
	defer pj.mu.Unlock()
	if spos, err = r.replay(ctx, pj, shadow.Handler, spos, buf, &parked); err != nil {
		return err
	}
	if shadow.Flush != nil {
		if err := shadow.Flush(ctx); err != nil {
			return fmt.Errorf("projection: %s: flush shadow: %w", pj.name, err)
		}
	}
	if live := event.Position(pj.pos.Load()); live > spos {
		// Cannot happen with a log whose head only moves forward; refuse
		// rather than swap in a view older than the live one.
		return fmt.Errorf("projection: %s: shadow at %v is behind live at %v", pj.name, spos, live)
	}
	if ps := r.parks; ps != nil {
		if err := ps.ReplaceParked(ctx, pj.name, parked); err != nil {
			return fmt.Errorf("projection: %s: save dead letters of the rebuilt view: %w", pj.name, err)
		}
	}
	shadow.Swap()
	pj.pos.Store(uint64(spos))
	wasStopped := pj.stopped.Swap(nil) != nil
	pj.health.Lock()
	pj.health.parked = parked
	pj.health.Unlock()
	pj.saveCheckpoint(context.WithoutCancel(ctx), spos)
	pj.notify.Publish()
	if wasStopped {
		pj.wake() // an async goroutine waits for Resume otherwise
	}
	if r.logger != nil {
		r.logger.LogAttrs(ctx, slog.LevelInfo, "projection: rebuilt", slog.String("projector", pj.name),
			slog.String("position", spos.String()), slog.Duration("took", time.Since(start)))
	}
	return nil
}

// replay feeds shadow from after spos until the log has nothing more. Under
// policy Park, events that fail every try are collected in parked, which
// becomes the dead-letter list of the swapped-in view.
func (r *Runner) replay(ctx context.Context, pj *proj, shadow event.Handler, spos event.Position, buf []event.Record, parked *[]DeadLetter) (event.Position, error) {
	for {
		if err := ctx.Err(); err != nil {
			return spos, err
		}
		if r.closed.Load() {
			return spos, store.ErrClosed
		}
		recs, rerr := r.events.Read(ctx, spos, buf[:0])
		var bad *store.RecordError
		if rerr != nil {
			bad = recordError(rerr)
		}
		if rerr != nil && bad == nil {
			return spos, rerr
		}
		if len(recs) == 0 && rerr == nil {
			return spos, nil
		}
		var err error
		if spos, err = r.replayBatch(ctx, pj, shadow, spos, recs, parked); err != nil {
			clear(recs)
			return spos, err
		}
		clear(recs)
		if bad != nil && bad.Position > spos {
			// The log cannot return this record: a failure of the event.
			if pj.cfg.policy != Park {
				return spos, &StoppedError{Projector: pj.name, Position: bad.Position, Err: rerr}
			}
			*parked = append(*parked, DeadLetter{Record: event.Record{Position: bad.Position, Type: bad.Type}, Err: rerr, Attempts: 1, At: time.Now()})
			spos = bad.Position
		}
	}
}

// replayBatch applies recs (one read of the log) to shadow, in batches when
// shadow is a BatchHandler.
func (r *Runner) replayBatch(ctx context.Context, pj *proj, shadow event.Handler, spos event.Position, recs []event.Record, parked *[]DeadLetter) (event.Position, error) {
	if bh, ok := shadow.(BatchHandler); ok && len(recs) > 1 {
		run, next, gap := pj.runOf(recs, spos)
		for len(run) > 1 {
			// The batch's error is run[n]'s, which replayRecord reproduces.
			n, _ := callBatch(ctx, bh, run)
			if n == len(run) {
				spos, run = next, nil
				break
			}
			if n > 0 {
				spos = run[n-1].Position
			}
			// run[n] failed within the batch: on its own, with the
			// retries and the policy.
			var err error
			if spos, err = r.replayRecord(ctx, pj, shadow, spos, &run[n], parked); err != nil {
				return spos, err
			}
			if run = run[n+1:]; len(run) == 0 {
				spos = next
			}
		}
		if len(run) == 1 {
			var err error
			if spos, err = r.replayRecord(ctx, pj, shadow, spos, &run[0], parked); err != nil {
				return spos, err
			}
			spos = next
		}
		if gap != nil {
			return spos, &StoppedError{Projector: pj.name, Position: spos + 1, Err: gap}
		}
		return spos, nil
	}
	for i := range recs {
		rec := &recs[i]
		if rec.Position <= spos {
			continue
		}
		if r.contig && rec.Position != spos+1 {
			return spos, &StoppedError{Projector: pj.name, Position: spos + 1, Err: &GapError{Projector: pj.name, Expected: spos + 1, Got: rec.Position}}
		}
		var err error
		if spos, err = r.replayRecord(ctx, pj, shadow, spos, rec, parked); err != nil {
			return spos, err
		}
	}
	return spos, nil
}

// replayRecord applies rec to shadow with the projector's retries; under
// policy Park a record that fails them all joins parked. It returns the
// position replayed through.
func (r *Runner) replayRecord(ctx context.Context, pj *proj, shadow event.Handler, spos event.Position, rec *event.Record, parked *[]DeadLetter) (event.Position, error) {
	interrupted, herr := pj.try(ctx, ctx, shadow, rec)
	switch {
	case herr == nil:
	case interrupted:
		return spos, ctx.Err()
	case pj.cfg.policy == Park:
		*parked = append(*parked, DeadLetter{Record: *rec, Err: herr, Attempts: pj.cfg.attempts, At: time.Now()})
	default:
		return spos, &StoppedError{Projector: pj.name, Position: rec.Position, Err: herr}
	}
	return rec.Position, nil
}
