package command

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

// Retry re-runs a dispatch that failed with a transient store.ErrConflict,
// up to attempts runs in all, sleeping backoff(n) before run n+1 (n starts
// at 1; a nil backoff retries at once). A failed unit of work leaves nothing
// behind, so a re-run re-reads current state.
//
// It never retries what re-running cannot fix: ErrAfterCommit (the command
// has already committed), a *StaleError (the command carried an outdated
// version), store.ErrAlreadyExists, ErrRejected, a handler panic
// (event.ErrPanic, even when the panic value is a conflict error: a panic is
// a bug, not a lost race), or any error that does not match
// store.ErrConflict.
//
// Errors: the last run's error, unchanged (after the attempts are used up it
// matches store.ErrConflict). When ctx is done after a conflict (while Retry
// waits, or before it would run again), Retry stops and returns an error
// that matches both ctx.Err() and the last conflict (errors.Is and errors.As
// reach either).
func Retry(attempts int, backoff func(n int) time.Duration) Middleware {
	if attempts < 1 {
		attempts = 1
	}
	return func(next DispatchFunc) DispatchFunc {
		return func(ctx context.Context, cmd any) (Result, error) {
			for n := 1; ; n++ {
				res, err := next(ctx, cmd)
				if err == nil || n >= attempts || !retryable(err) {
					return res, err
				}
				if ctx.Err() != nil {
					return res, &retryStopped{ctx: ctx.Err(), last: err, attempts: n}
				}
				if backoff != nil {
					if d := backoff(n); d > 0 {
						t := time.NewTimer(d)
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
							return res, &retryStopped{ctx: ctx.Err(), last: err, attempts: n}
						}
					}
				}
			}
		}
	}
}

// retryable reports whether re-running the command may succeed.
func retryable(err error) bool {
	if !errors.Is(err, store.ErrConflict) || errors.Is(err, ErrAfterCommit) ||
		errors.Is(err, store.ErrAlreadyExists) || errors.Is(err, ErrRejected) ||
		errors.Is(err, event.ErrPanic) {
		return false
	}
	var stale *StaleError
	return !errors.As(err, &stale)
}

// retryStopped is Retry's error when ctx ends between attempts.
type retryStopped struct {
	ctx, last error
	attempts  int
}

func (e *retryStopped) Error() string {
	return fmt.Sprintf("command: retry stopped after %d attempt(s): %v (last error: %v)", e.attempts, e.ctx, e.last)
}

func (e *retryStopped) Unwrap() []error { return []error{e.ctx, e.last} }

// Authorize rejects a command when allow returns an error, before next runs.
//
// Errors: ErrForbidden when allow refuses (allow's error if it already
// matches ErrForbidden, else a *ForbiddenError whose Reason is its text);
// otherwise next's error, unchanged.
func Authorize(allow func(ctx context.Context, cmd any) error) Middleware {
	return func(next DispatchFunc) DispatchFunc {
		return func(ctx context.Context, cmd any) (Result, error) {
			if err := allow(ctx, cmd); err != nil {
				if !errors.Is(err, ErrForbidden) {
					err = &ForbiddenError{Reason: err.Error()}
				}
				return Result{}, err
			}
			return next(ctx, cmd)
		}
	}
}

// Logging logs each dispatch to logger: rejections and failures at Info,
// successes at Debug, so a production logger at Info stays quiet on the hot
// path. It returns next's result and error unchanged.
func Logging(logger *slog.Logger) Middleware {
	return func(next DispatchFunc) DispatchFunc {
		return func(ctx context.Context, cmd any) (Result, error) {
			start := time.Now()
			res, err := next(ctx, cmd)
			if err != nil {
				logger.LogAttrs(ctx, slog.LevelInfo, "command failed",
					slog.String("command", fmt.Sprintf("%T", cmd)),
					slog.Duration("took", time.Since(start)),
					slog.Any("error", err))
			} else if logger.Enabled(ctx, slog.LevelDebug) {
				logger.LogAttrs(ctx, slog.LevelDebug, "command committed",
					slog.String("command", fmt.Sprintf("%T", cmd)),
					slog.Duration("took", time.Since(start)),
					slog.String("position", res.Position.String()))
			}
			return res, err
		}
	}
}

// Observe calls fn after each dispatch with the command, its duration and
// its error; wire it to a metrics library. It returns next's result and
// error unchanged.
func Observe(fn func(cmd any, took time.Duration, err error)) Middleware {
	return func(next DispatchFunc) DispatchFunc {
		return func(ctx context.Context, cmd any) (Result, error) {
			start := time.Now()
			res, err := next(ctx, cmd)
			fn(cmd, time.Since(start), err)
			return res, err
		}
	}
}

// Recover turns a panic below it (in a handler, in middleware after it, or
// in post-commit work) into a *event.PanicError, which matches
// event.ErrPanic and unwraps to the panic value when that is an error. A
// panicking handler's unit of work is rolled back by the store before the
// panic reaches Recover. Any other error from next is returned unchanged.
func Recover() Middleware {
	return func(next DispatchFunc) DispatchFunc {
		return func(ctx context.Context, cmd any) (Result, error) {
			var res Result
			err := safe.Call(func() (err error) {
				res, err = next(ctx, cmd)
				return err
			})
			return res, err
		}
	}
}
