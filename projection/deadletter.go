package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// DeadLetter is an event that exhausted its retries under policy Park: the
// record, the last error (a *event.PanicError when the projector panicked),
// how often it was tried and when it was parked. Runner.Parked lists them;
// a ParkStore keeps them across restarts.
type DeadLetter struct {
	Record   event.Record
	Err      error
	Attempts int
	At       time.Time
}

// Parked lists the projector's dead-lettered events, oldest first.
//
// Errors: none to branch on; a plain error for an unknown name.
func (r *Runner) Parked(name string) ([]DeadLetter, error) {
	pj, err := r.get(name)
	if err != nil {
		return nil, err
	}
	pj.health.Lock()
	defer pj.health.Unlock()
	return append([]DeadLetter(nil), pj.health.parked...), nil
}

// Replay applies the parked event at pos to the projector again (after the
// fault is fixed) and removes it from the dead-letter list on success. The
// record is read again from the log and applied once, without retries, and
// out of order, after everything that followed it; the projector must
// tolerate that for the events it may park. A projector that keeps its own
// checkpoint (SelfCheckpointer) is already past the event and would skip
// it: it must implement Replayer, or Replay fails (a plain error) and
// the event stays parked.
//
// Errors: the log's error reading the record (store.ErrUnavailable,
// store.ErrClosed stay reachable); the projector's
// error (the event stays parked, with that error); ctx.Err() while waiting
// for the projector; plain errors for an unknown name or when no event is
// parked at pos.
func (r *Runner) Replay(ctx context.Context, name string, pos event.Position) error {
	pj, err := r.get(name)
	if err != nil {
		return err
	}
	// No delivery, hence no park or rebuild swap, meanwhile.
	if err := pj.mu.LockCtx(ctx); err != nil {
		return err
	}
	defer pj.mu.Unlock()
	pj.health.Lock()
	idx := pj.parkedAt(pos)
	pj.health.Unlock()
	if idx < 0 {
		return fmt.Errorf("%w: %s at position %v", errNotParked, name, pos)
	}
	herr := r.replayOne(ctx, pj, pos)
	pj.health.Lock()
	defer pj.health.Unlock()
	if idx = pj.parkedAt(pos); idx < 0 {
		return herr
	}
	if herr != nil {
		pj.health.parked[idx].Err = herr
		pj.health.parked[idx].Attempts++
		pj.health.parked[idx].At = time.Now()
		return herr
	}
	// The event is applied: it leaves the list even if the durable unpark
	// fails, so that a second Replay cannot apply it twice.
	pj.health.parked = append(pj.health.parked[:idx], pj.health.parked[idx+1:]...)
	if ps := r.parks; ps != nil {
		if err := ps.Unpark(ctx, name, pos); err != nil {
			return fmt.Errorf("projection: %s: replayed position %v, but could not remove its durable dead letter (it may be listed again after a restart): %w", name, pos, err)
		}
	}
	return nil
}

// replayOne reads the record at pos from the log and applies it out of
// order. pj.mu must be held.
func (r *Runner) replayOne(ctx context.Context, pj *proj, pos event.Position) error {
	rp, canReplay := pj.p.(Replayer)
	if !canReplay && pj.selfCP != nil {
		return fmt.Errorf("%w: %s keeps its own checkpoint and does not implement projection.Replayer", errNotReplayable, pj.name)
	}
	recs, err := r.events.Read(ctx, pos-1, make([]event.Record, 0, 1))
	if err != nil {
		return err
	}
	if len(recs) == 0 || recs[0].Position != pos {
		return fmt.Errorf("projection: %s: parked position %v is not in the log", pj.name, pos)
	}
	if pj.lease != nil && !pj.lease.owns() {
		return fmt.Errorf("%w: %s", errNotOwner, pj.name)
	}
	handlerCtx := pj.ctxFor(detach(ctx))
	if canReplay {
		return pj.handle(handlerCtx, event.HandlerFunc(rp.Replay), recs[0])
	}
	return pj.handle(handlerCtx, pj.p, recs[0])
}

// loadParked restores a projector's dead letters from the ParkStore,
// reading each record back from the log.
func (r *Runner) loadParked(ctx context.Context, pj *proj) error {
	dls, err := r.parks.LoadParked(ctx, pj.name)
	if err != nil || len(dls) == 0 {
		return err
	}
	list := make([]DeadLetter, 0, len(dls))
	buf := make([]event.Record, 0, 1)
	for _, dl := range dls {
		pos := dl.Record.Position
		recs, err := r.events.Read(ctx, pos-1, buf[:0])
		var re *store.RecordError
		if err != nil && len(recs) == 0 && errors.As(err, &re) && re.Position == pos {
			// Parked because the log cannot return it (an unknown type):
			// keep it listed; Replay reads it again.
			recs, err = append(recs, event.Record{Position: re.Position, Type: re.Type}), nil
		}
		if err != nil {
			return err
		}
		if len(recs) == 0 || recs[0].Position != pos {
			return fmt.Errorf("projection: %s: parked position %v is not in the log", pj.name, pos)
		}
		dl.Record = recs[0]
		list = append(list, dl)
	}
	pj.health.Lock()
	pj.health.parked = list
	pj.health.Unlock()
	return nil
}

// parkedAt returns the index of the parked record at pos, or -1. pj.health must
// be held.
func (pj *proj) parkedAt(pos event.Position) int {
	for i, p := range pj.health.parked {
		if p.Record.Position == pos {
			return i
		}
	}
	return -1
}

// policy parks rec or stops the projector at it, after it failed with err.
func (pj *proj) policy(ctx, handlerCtx context.Context, rec *event.Record, err error, attempts int) error {
	if pj.cfg.policy == Park {
		p := DeadLetter{Record: *rec, Err: err, Attempts: attempts, At: time.Now()}
		if ps := pj.r.parks; ps != nil {
			// The dead letter must be durable before the checkpoint moves
			// past the event; if it cannot be, stop instead of losing it.
			if perr := ps.Park(handlerCtx, pj.name, p); perr != nil {
				return pj.halt(fmt.Errorf("park failed: %w (projector error: %w)", perr, err), rec.Position)
			}
		}
		pj.health.Lock()
		pj.health.parked = append(pj.health.parked, p)
		pj.health.Unlock()
		if l := pj.r.logger; l != nil {
			l.LogAttrs(ctx, slog.LevelWarn, "projection: event parked", slog.String("projector", pj.name),
				slog.String("position", rec.Position.String()), slog.String("type", rec.Type), slog.Any("error", err))
		}
		return nil
	}
	return pj.halt(err, rec.Position)
}
