package projection

import (
	"context"
	"errors"
	"fmt"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/internal/safe"
	"github.com/cqrskit/cqrs/store"
)

// BatchFlusher is an optional capability of a SelfCheckpointer whose store
// is remote (Redis, SQL): writing every event on its own costs a network
// round trip per event, so its Handle may buffer the writes of the records
// it accepts, and the runner calls FlushBatch once at the end of every
// batch of records it delivered.
//
// FlushBatch must make the buffered writes durable together with pos as
// the projector's checkpoint, atomically, or write nothing and return an
// error. pos is the last record the runner is done with, applied or
// parked by the failure policy. The runner publishes the batch's position
// (WaitFor, Status, the next batch's start) only once FlushBatch returned
// nil, so a query that waited for a position sees the writes. When it
// fails, nothing of the batch counts as applied: the runner delivers the
// batch again (after an infrastructure pause), and the projector must
// have dropped what it had buffered. An error matching store.ErrConflict
// (the stored checkpoint is not the one the batch started from: another
// writer got there) stops the projector, like a refused checkpoint save.
type BatchFlusher interface {
	FlushBatch(ctx context.Context, pos event.Position) error
}

// flushBatch calls the projector's FlushBatch; a conflict stops the
// projector.
func (pj *proj) flushBatch(ctx context.Context, pos event.Position) error {
	fl := pj.p.(BatchFlusher)
	err := fl.FlushBatch(ctx, pos)
	if err != nil && errors.Is(err, store.ErrConflict) {
		return pj.halt(fmt.Errorf("batch not flushed: %w", err), pos)
	}
	return err
}

// BatchHandler is an optional capability of a Projector, or of the Handler
// of a Shadow, for read models that apply many events more cheaply than
// one at a time: under one lock, into a private staging copy published
// once, in one write to a remote store. When the runner has more than one
// record for the projector in hand (catching up, a rebuild's replay, a
// Sync after several commits), it calls HandleBatch with them instead of
// calling Handle for each; with a single record it calls Handle. The
// records are in position order, contiguous, and for this projector only
// (already applied records, and other partitions' records, are left out).
// HandleBatch must not keep recs after it returns: the runner reuses the
// slice.
//
// HandleBatch returns how many leading records it applied. With a nil
// error that is len(recs). With an error, recs[:n] are applied (their
// effects are visible to queries, or buffered for FlushBatch, as with
// Handle) and recs[n:] must have had no effect: the runner then delivers
// recs[n] on its own, to Handle, with the projector's retries, classifier
// and failure policy, exactly as without batching, and carries on after
// it. An error therefore never skips a record, and a projector may return
// one simply to fall back to Handle for a record it cannot batch. A panic
// counts as n = 0: a projector that publishes part of a batch before it
// might panic must recover and report n itself.
//
// The checkpoint, WaitFor and Status move once per batch, after
// HandleBatch returned (and, for a BatchFlusher, after FlushBatch), never
// past a record that is not applied. A leased projector whose lease has
// lapsed is not handed the batch; one that loses it during HandleBatch
// should return ErrFenced, as Handle would.
type BatchHandler interface {
	HandleBatch(ctx context.Context, recs []event.Record) (int, error)
}

// callBatch runs h.HandleBatch on recs; a panic becomes a *event.PanicError
// with nothing applied. n is clamped to what the contract allows.
func callBatch(ctx context.Context, h BatchHandler, recs []event.Record) (n int, err error) {
	err = safe.Call(func() error {
		var herr error
		n, herr = h.HandleBatch(ctx, recs)
		return herr
	})
	if err == nil || n >= len(recs) {
		// Success, or an error after the last record: all applied.
		return len(recs), nil
	}
	return max(n, 0), err
}

// runOf returns the records of recs that lie after applied and that the
// projector must be handed, in order: recs[i] at or below applied are left
// out, and so are other partitions' records. It stops at a gap in a
// contiguous log, returning the *GapError. next is the position the run
// brings the projector to once applied (other partitions' records
// included). recs may be compacted in place.
func (pj *proj) runOf(recs []event.Record, applied event.Position) (run []event.Record, next event.Position, gap error) {
	next = applied
	start, k := 0, 0
	for i := range recs {
		rec := &recs[i]
		if rec.Position <= next {
			if k == 0 {
				start = i + 1 // at-least-once delivery: already applied
			}
			continue
		}
		if pj.r.contig && rec.Position != next+1 {
			gap = &GapError{Projector: pj.name, Expected: next + 1, Got: rec.Position}
			break
		}
		next = rec.Position
		if pj.part != nil && PartitionOf(rec.Stream, pj.part.Count) != pj.part.Index {
			continue // another partition's record: done with it, without a call
		}
		if j := start + k; j != i {
			recs[j] = *rec
		}
		k++
	}
	return recs[start : start+k], next, gap
}

// deliverRun hands run (as runOf returned it, non-empty) to the projector's
// HandleBatch; when that reports a failure at run[n], it delivers run[n]
// alone through apply (retries, then the policy) and hands over the rest.
// It returns the position applied through and the failure that stopped it.
// next is where a fully applied run leaves the projector; publish stores
// progress in pj.pos as it goes (not for a BatchFlusher, whose batch counts
// only once flushed).
func (pj *proj) deliverRun(ctx, handlerCtx context.Context, run []event.Record, applied, next event.Position, publish bool) (event.Position, error) {
	for len(run) > 0 {
		if pj.lease != nil && pj.lease.lapsed() {
			// Possibly no longer ours: the batch in hand is dropped.
			held, _ := pj.lease.get()
			return applied, &FencedError{Name: pj.name, Token: held.Token}
		}
		var n int
		var err error
		if len(run) == 1 {
			err = pj.apply(ctx, handlerCtx, &run[0])
			if err == nil {
				n = 1
			}
		} else {
			n, err = callBatch(handlerCtx, pj.batch, run)
		}
		if n > 0 {
			applied = run[n-1].Position
			if n == len(run) {
				applied = next
			}
			if publish {
				pj.pos.Store(uint64(applied))
			}
		}
		if err == nil {
			return applied, nil
		}
		if len(run) == 1 || (pj.lease != nil && (errors.Is(err, ErrFenced) || handlerCtx.Err() != nil)) {
			return applied, err // apply's verdict, or the lease is lost
		}
		// run[n] failed within the batch: deliver it on its own, with the
		// retries and the policy, then carry on after it.
		if err := pj.apply(ctx, handlerCtx, &run[n]); err != nil {
			return applied, err
		}
		applied = run[n].Position
		run = run[n+1:]
		if len(run) == 0 {
			applied = next
		}
		if publish {
			pj.pos.Store(uint64(applied))
		}
		if ctx.Err() != nil {
			return applied, nil // step reports it if applied is short of the target
		}
	}
	return applied, nil
}
