package projection

import (
	"context"
	"errors"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Sync brings every inline projector up to at least pos. command.Bus calls
// it after each commit (command.WithSyncer). Concurrent Syncs are safe: each
// projector applies events in log order whoever delivers them.
//
// Every blocking step honours ctx, including waiting for another caller
// that is delivering to the same projector. When the log is held back below
// pos (store.HorizonReporter) for longer than a short grace period, Sync
// returns early with a *store.HeldBackError instead of waiting for ctx.
//
// Errors: *StoppedError for a stopped inline projector (the event stays
// unapplied until Resume); *store.HeldBackError (matching
// store.ErrUnavailable); a log error; ctx.Err(); [store.ErrClosed]; a plain
// error before Start.
func (r *Runner) Sync(ctx context.Context, pos event.Position) error {
	if !r.ready.Load() {
		return errNotStarted
	}
	if r.closed.Load() {
		return store.ErrClosed
	}
	var errs []error
	var handlerCtx context.Context
	for _, pj := range r.inline {
		if event.Position(pj.pos.Load()) >= pos {
			continue
		}
		if handlerCtx == nil {
			handlerCtx = detach(ctx)
		}
		if err := pj.mu.LockCtx(ctx); err != nil {
			errs = append(errs, err)
			pj.catchUpLater(pos)
			continue
		}
		err := pj.deliver(ctx, handlerCtx, pos)
		pj.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			if pj.stopped.Load() == nil {
				pj.catchUpLater(pos)
			}
		}
	}
	return errors.Join(errs...)
}

// catchUpLater hands pos, committed but not yet applied by the inline
// projector pj because its Sync gave up (the caller's context ended, or the
// log failed), to a background goroutine that applies it. Without it the
// view would lag a committed write until the next Sync or WaitFor, however
// long that takes. One goroutine at a time per projector; it stops when
// the projector is up to date, stops, or the runner closes.
func (pj *proj) catchUpLater(pos event.Position) {
	for {
		cur := pj.lagging.Load()
		if uint64(pos) <= cur || pj.lagging.CompareAndSwap(cur, uint64(pos)) {
			break
		}
	}
	if !pj.catching.CompareAndSwap(false, true) {
		return // the running goroutine will see the new position
	}
	r := pj.r
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		pj.catching.Store(false)
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go pj.catchUp()
}

func (pj *proj) catchUp() {
	r := pj.r
	defer r.wg.Done()
	ctx := r.runCtx
	for failures := 0; ; {
		target := event.Position(pj.lagging.Load())
		err := pj.mu.LockCtx(ctx)
		if err == nil {
			err = pj.deliver(ctx, r.handlerCtx, target)
			pj.mu.Unlock()
		}
		switch {
		case err == nil:
			failures = 0
		case ctx.Err() != nil || pj.stopped.Load() != nil:
			// Closing, or stopped: Status reports it, and Resume or
			// the next Sync takes over.
			pj.catching.Store(false)
			return
		default:
			// The log failed: try again after a pause, as an async
			// projector would.
			failures++
			t := time.NewTimer(InfraBackoff(failures))
			select {
			case <-ctx.Done():
				t.Stop()
				pj.catching.Store(false)
				return
			case <-t.C:
			}
			continue
		}
		if pj.pos.Load() >= pj.lagging.Load() {
			pj.catching.Store(false)
			// A Sync that gave up between the check and the store left
			// its position to this goroutine: take it back, unless
			// that Sync has already started another one.
			if pj.pos.Load() >= pj.lagging.Load() || !pj.catching.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// WaitFor blocks until the projector called name (every projector when name
// is "") has applied pos, and returns nil as soon as it has. An inline
// projector is first brought up to the log head, which covers positions
// committed without going through Sync.
//
// Errors: when ctx ends first, or the runner is closed, a *NotReachedError
// ([ErrNotReached]) that also unwraps to ctx's error (or [store.ErrClosed])
// and, for a stopped projector, to its *StoppedError ([ErrStopped]); a
// plain error for an unknown name.
//
// For a partitioned projector (WithPartitions), name may be the
// projector's name: WaitFor then waits for every partition.
func (r *Runner) WaitFor(ctx context.Context, name string, pos event.Position) error {
	r.mu.Lock()
	order := r.order
	r.mu.Unlock()
	if name != "" {
		pj, err := r.get(name)
		if err == nil {
			return pj.waitFor(ctx, pos)
		}
		var parts []*proj
		for _, pj := range order {
			if pj.part != nil && pj.part.Name == PartitionName(name, pj.part.Index, pj.part.Count) {
				parts = append(parts, pj)
			}
		}
		if len(parts) == 0 {
			return err
		}
		order = parts
	}
	for _, pj := range order {
		if err := pj.waitFor(ctx, pos); err != nil {
			return err
		}
	}
	return nil
}

func (pj *proj) waitFor(ctx context.Context, pos event.Position) error {
	if event.Position(pj.pos.Load()) >= pos {
		return nil
	}
	r := pj.r
	if pj.cfg.mode == Inline && r.ready.Load() && !r.closed.Load() && pj.stopped.Load() == nil {
		// Inline projectors only move on Sync; deliver what the log has.
		if err := pj.mu.LockCtx(ctx); err != nil {
			return pj.notReached(ctx, pos, err)
		}
		_ = pj.deliver(ctx, detach(ctx), endOfLog)
		pj.mu.Unlock()
	}
	for {
		if event.Position(pj.pos.Load()) >= pos {
			return nil
		}
		ch := pj.notify.Wait()
		if event.Position(pj.pos.Load()) >= pos {
			return nil
		}
		if r.closed.Load() || pj.exited.Load() {
			return pj.notReached(ctx, pos, store.ErrClosed)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return pj.notReached(ctx, pos, ctx.Err())
		}
	}
}

func (pj *proj) notReached(ctx context.Context, want event.Position, err error) error {
	reached := pj.pos.Load()
	e := &NotReachedError{Projector: pj.name, Want: want, Reached: event.Position(reached), Err: err}
	if se := pj.stopped.Load(); se != nil {
		e.Cause = se
	} else if ie := pj.infraErr(); ie != nil {
		e.Cause = ie
	}
	head, hb := pj.r.probe(ctx)
	if e.Cause == nil && hb != nil && hb.Readable < want && event.Position(reached) >= hb.Readable {
		e.Cause = &store.HeldBackError{HeldBack: *hb}
	}
	e.State = pj.state(reached, head)
	return e
}

// probeTimeout bounds the look at the log that WaitFor takes after its
// context ended, to describe why the position was not reached.
const probeTimeout = 100 * time.Millisecond

// probe reads the log head and, when the log reports it, what holds it
// back, giving up after probeTimeout even if the log ignores its context
// (a frozen server): it then returns what it knows, possibly nothing.
func (r *Runner) probe(ctx context.Context) (event.Position, *store.HeldBack) {
	type result struct {
		head event.Position
		hb   *store.HeldBack
	}
	ch := make(chan result, 1)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
	defer cancel()
	go func() {
		var res result
		res.head, _ = r.events.Head(pctx)
		if hr, ok := r.events.(store.HorizonReporter); ok && pctx.Err() == nil {
			if hb, err := hr.HeldBack(pctx); err == nil && hb != nil {
				res.hb = hb
				res.head = max(res.head, hb.Head)
			}
		}
		ch <- res
	}()
	select {
	case res := <-ch:
		return res.head, res.hb
	case <-pctx.Done():
		return 0, nil
	}
}

// Resume clears a stopped projector's error; it retries the failing event
// at once (inline projectors here, async ones on their goroutine). It does
// nothing to an async projector that is not stopped.
//
// Errors: [store.ErrClosed]; for an inline projector, what Sync returns
// (a *StoppedError, [ErrStopped], if it fails again); ctx.Err() while
// waiting for the projector; plain errors for an unknown name or a runner
// not started.
func (r *Runner) Resume(ctx context.Context, name string) error {
	pj, err := r.get(name)
	if err != nil {
		return err
	}
	if r.closed.Load() || pj.exited.Load() {
		return store.ErrClosed // also when Start's ctx ended
	}
	if !r.ready.Load() {
		return errNotStarted
	}
	wasStopped := pj.stopped.Swap(nil) != nil
	if pj.cfg.mode == Async {
		if wasStopped {
			pj.wake()
		}
		return nil
	}
	if err := pj.mu.LockCtx(ctx); err != nil {
		return err
	}
	defer pj.mu.Unlock()
	return pj.deliver(ctx, detach(ctx), endOfLog)
}

// detach returns a context with ctx's values that is never cancelled, for
// handlers, so the event in hand finishes. It allocates only when ctx can be
// cancelled.
func detach(ctx context.Context) context.Context {
	if ctx.Done() == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// wake lets a stopped async goroutine look again.
func (pj *proj) wake() {
	select {
	case pj.resume <- struct{}{}:
	default:
	}
}
