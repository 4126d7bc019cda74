package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/internal/safe"
	"github.com/cqrskit/cqrs/store"
)

// follow is an async projector's goroutine. It holds pj.mu for one batch at
// a time, so Rebuild, Replay and Resume never wait for a whole catch-up.
// Handlers run with handlerCtx, which Close cancels only after its timeout, so the
// event in hand finishes; the loop checks ctx between events.
func (pj *proj) follow(ctx, handlerCtx context.Context) {
	defer func() {
		pj.exited.Store(true)
		pj.notify.Publish()
		pj.r.wg.Done()
	}()
	failures := 0 // consecutive log failures
	for ctx.Err() == nil {
		pj.mu.Lock()
		more, err := pj.step(ctx, handlerCtx, endOfLog)
		pj.mu.Unlock()
		if err == nil && !more {
			err = pj.r.events.Wait(ctx, event.Position(pj.pos.Load()))
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrStopped):
			failures = 0
			select {
			case <-pj.resume: // Resume or a successful Rebuild
			case <-ctx.Done():
				return
			}
		case errors.Is(err, store.ErrClosed):
			return
		case err != nil:
			// The log failed: the infrastructure, not an event. Retry
			// for as long as it lasts, visibly.
			failures++
			pj.setInfra(err)
			pj.notify.Publish()
			if !sleep(ctx, InfraBackoff(failures)) {
				return
			}
		default:
			failures = 0
		}
	}
}

// sleep waits for d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// deliver applies records after pj.pos until it has reached upTo (or, for
// ^0, until the log has nothing more). pj.mu must be held. Handlers run with
// handlerCtx; ctx is checked between events.
func (pj *proj) deliver(ctx, handlerCtx context.Context, upTo event.Position) error {
	for {
		more, err := pj.step(ctx, handlerCtx, upTo)
		if err != nil || !more {
			return err
		}
	}
}

// A held-back log makes Sync give up early (see waitReadable) only once the
// blocking transaction has been open for heldBackGrace: ordinary write
// transactions elsewhere in the cluster hold the horizon for milliseconds,
// and failing a dispatch for them would be noise. heldBackPoll is how often
// Sync asks the log while it waits.
const (
	heldBackGrace = 2 * time.Second
	heldBackPoll  = 250 * time.Millisecond
)

// step applies one batch of records towards upTo, saves the checkpoint and
// reports whether there may be more to do. pj.mu must be held.
func (pj *proj) step(ctx, handlerCtx context.Context, upTo event.Position) (more bool, err error) {
	if se := pj.stopped.Load(); se != nil {
		return false, se
	}
	pos := event.Position(pj.pos.Load())
	if pos >= upTo {
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var (
		recs []event.Record
		rerr error
	)
	if pr, ok := pj.r.events.(PartitionReader); ok && pj.part != nil {
		// Leave the other partitions' payloads undecoded.
		recs, rerr = pr.ReadPartition(ctx, pos, pj.buf[:0], *pj.part)
	} else {
		recs, rerr = pj.r.events.Read(ctx, pos, pj.buf[:0])
	}
	var bad *store.RecordError
	if rerr != nil {
		bad = recordError(rerr)
	}
	if rerr != nil && bad == nil {
		if len(recs) == 0 {
			return false, rerr
		}
	} else if pj.unavailable.Load() {
		pj.setInfra(nil) // the log answers again
	}
	if len(recs) == 0 && rerr == nil {
		if upTo == endOfLog {
			return false, nil
		}
		// The commit at upTo is not readable yet (a durable log's
		// horizon is behind it): wait for it rather than return early.
		return true, pj.waitReadable(ctx, pos, upTo)
	}
	applied := pos
	var failed error
	_, buffers := pj.p.(BatchFlusher)
	batched := pj.batch != nil && len(recs) > 1
	if batched {
		// runOf may compact recs, so deliverEach must not run after it;
		// deliverRun gives a run of one record to Handle.
		run, next, gap := pj.runOf(recs, applied)
		if len(run) > 0 {
			applied, failed = pj.deliverRun(ctx, handlerCtx, run, applied, next, !buffers)
		} else if next > applied {
			// Only other partitions' records: done with them.
			applied = next
			if !buffers {
				pj.pos.Store(uint64(applied))
			}
		}
		if failed == nil && gap != nil {
			failed = pj.halt(gap, applied+1)
		}
		if failed == nil && applied < upTo {
			failed = ctx.Err()
		}
	} else {
		applied, failed = pj.deliverEach(ctx, handlerCtx, recs, applied, upTo, buffers)
	}
	clear(recs) // drop payload references held by the reused buffer
	if failed == nil && rerr != nil {
		switch {
		case bad == nil:
			failed = rerr // a log failure after some records
		case bad.Position <= applied:
		case bad.Position > upTo:
			// Nothing readable lies between applied and upTo.
			rerr = nil
		default:
			// The log cannot return this record (say, its type is not
			// registered): a failure of the event, for the policy.
			rec := event.Record{Position: bad.Position, Type: bad.Type}
			if failed = pj.policy(ctx, handlerCtx, &rec, rerr, 1); failed == nil {
				applied = bad.Position
				if !buffers {
					pj.pos.Store(uint64(applied))
				}
			}
		}
	}
	if applied > pos && buffers {
		// The projector buffered the batch (BatchFlusher): it counts as
		// applied once flushed, and is delivered again when not.
		if err := pj.flushBatch(handlerCtx, applied); err != nil {
			applied = pos
			if failed == nil {
				failed = err
			}
		} else {
			pj.pos.Store(uint64(applied))
		}
	}
	if applied > pos {
		if err := pj.saveCheckpoint(handlerCtx, applied); err != nil && failed == nil {
			failed = err
		}
		pj.notify.Publish()
	}
	if failed == nil && rerr != nil && bad != nil && bad.Position > upTo {
		return false, nil
	}
	return failed == nil, failed
}

// recordError returns the *store.RecordError in err's chain, or nil. (A
// function of its own so that the target escapes only on this slow path.)
func recordError(err error) *store.RecordError {
	var re *store.RecordError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

// waitReadable waits for the log to move past pos on the way to upTo. On a
// log that reports a held-back horizon it gives up, with a
// *store.HeldBackError, once upTo is held back by a transaction open for
// heldBackGrace or more (or, when the store cannot tell the age, once Sync
// itself has waited that long).
func (pj *proj) waitReadable(ctx context.Context, pos, upTo event.Position) error {
	hr, ok := pj.r.events.(store.HorizonReporter)
	if !ok {
		return pj.r.events.Wait(ctx, pos)
	}
	start := time.Now()
	for {
		wctx, cancel := context.WithTimeout(ctx, heldBackPoll)
		err := pj.r.events.Wait(wctx, pos)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		hb, err := hr.HeldBack(ctx)
		if err != nil {
			return err
		}
		if hb == nil || hb.Readable >= upTo {
			return nil
		}
		if max(hb.Age, time.Since(start)) >= heldBackGrace {
			return &store.HeldBackError{HeldBack: *hb}
		}
	}
}

// apply runs the projector on rec with retries, then applies the policy. It
// returns ctx.Err() when ctx ends during a backoff pause: the record is then
// neither applied nor parked and will be delivered again.
func (pj *proj) apply(ctx, handlerCtx context.Context, rec *event.Record) error {
	interrupted, err := pj.try(ctx, handlerCtx, pj.p, rec)
	if err == nil {
		return nil
	}
	if pj.lease != nil && (errors.Is(err, ErrFenced) || handlerCtx.Err() != nil) {
		// The lease is lost: the record is the new owner's to apply.
		return err
	}
	if interrupted {
		if pj.cfg.classify(err) {
			return fmt.Errorf("%w (retrying %w)", ctx.Err(), err)
		}
		return ctx.Err()
	}
	return pj.policy(ctx, handlerCtx, rec, err, pj.cfg.attempts)
}

// try runs h on rec up to the configured number of attempts, pausing with
// the backoff between them. Infrastructure failures (see WithClassifier) do
// not count as attempts: they are retried until they stop or ctx ends. It
// returns nil on success, else the last error; interrupted reports that ctx
// ended during a pause.
func (pj *proj) try(ctx, handlerCtx context.Context, h event.Handler, rec *event.Record) (interrupted bool, err error) {
	infra := 0
	for n := 1; ; {
		err = pj.handle(handlerCtx, h, *rec)
		if err != nil && pj.lease != nil && (errors.Is(err, ErrFenced) || handlerCtx.Err() != nil) {
			return false, err // no retry under a lost lease
		}
		if err != nil && pj.cfg.classify(err) {
			infra++
			pj.setInfra(err)
			pj.notify.Publish()
			if !sleep(ctx, InfraBackoff(infra)) {
				return true, err
			}
			continue
		}
		if infra > 0 {
			pj.setInfra(nil)
			infra = 0
		}
		if err == nil || n >= pj.cfg.attempts {
			return false, err
		}
		if pj.cfg.backoff != nil {
			if d := pj.cfg.backoff(n); d > 0 && !sleep(ctx, d) {
				return true, err
			}
		}
		n++
	}
}

func (pj *proj) halt(err error, at event.Position) error {
	se := &StoppedError{Projector: pj.name, Position: at, Err: err}
	pj.stopped.Store(se)
	if l := pj.r.logger; l != nil {
		l.LogAttrs(context.Background(), slog.LevelError, "projection: projector stopped", slog.String("projector", pj.name),
			slog.String("position", at.String()), slog.Any("error", err))
	}
	pj.notify.Publish() // wake WaitFor callers so they can see the cause
	return se
}

// handle runs h on rec; a panic becomes a *event.PanicError.
func (pj *proj) handle(ctx context.Context, h event.Handler, rec event.Record) error {
	return safe.Call(func() error { return h.Handle(ctx, rec) })
}

// saveCheckpoint saves pos, unless the projector keeps its own. A save
// refused because the stored checkpoint is ahead (store.ErrConflict: another
// runner of this projector got further) stops the projector with it; other
// save errors are reported in Status and the next save tries again.
func (pj *proj) saveCheckpoint(ctx context.Context, pos event.Position) error {
	if pj.selfCP != nil {
		return nil
	}
	cp := Checkpoint{Position: pos, Version: pj.version}
	var err error
	if pj.lease != nil {
		held, _ := pj.lease.get()
		if held.Token == 0 {
			return &FencedError{Name: pj.name}
		}
		if err = pj.r.cps.(FencedCheckpoints).SaveFenced(ctx, pj.name, cp, held); err != nil && (errors.Is(err, ErrFenced) || ctx.Err() != nil) {
			// The lease is lost (or going): not a save failure to report.
			return err
		}
	} else {
		err = pj.r.cps.Save(ctx, pj.name, cp)
	}
	pj.health.Lock()
	pj.health.saveErr = err
	pj.health.Unlock()
	if err != nil && pj.r.logger != nil {
		pj.r.logger.LogAttrs(ctx, slog.LevelError, "projection: checkpoint save failed", slog.String("projector", pj.name), slog.Any("error", err))
	}
	if errors.Is(err, store.ErrConflict) {
		return pj.halt(fmt.Errorf("checkpoint not saved: %w", err), pos)
	}
	return nil
}

// deliverEach gives recs to the projector one at a time, from applied on,
// and returns the last position applied and what stopped it, if anything.
func (pj *proj) deliverEach(ctx, handlerCtx context.Context, recs []event.Record, applied, upTo event.Position, buffers bool) (event.Position, error) {
	for i := range recs {
		rec := &recs[i]
		if rec.Position <= applied {
			continue // at-least-once delivery: already applied
		}
		if pj.r.contig && rec.Position != applied+1 {
			return applied, pj.halt(&GapError{Projector: pj.name, Expected: applied + 1, Got: rec.Position}, applied+1)
		}
		if pj.lease != nil && pj.lease.lapsed() {
			// Possibly no longer ours (say, this process was paused): do
			// not start another record; the batch in hand is dropped.
			held, _ := pj.lease.get()
			return applied, &FencedError{Name: pj.name, Token: held.Token}
		}
		if pj.part != nil && PartitionOf(rec.Stream, pj.part.Count) != pj.part.Index {
			// Another partition's record: done with it, without a call.
			applied = rec.Position
			if !buffers {
				pj.pos.Store(uint64(applied))
			}
			continue
		}
		if err := pj.apply(ctx, handlerCtx, rec); err != nil {
			return applied, err
		}
		applied = rec.Position
		if !buffers {
			pj.pos.Store(uint64(applied))
		}
		if err := ctx.Err(); err != nil {
			if applied < upTo {
				return applied, err
			}
			return applied, nil
		}
	}
	return applied, nil
}
