package command

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// Validator is implemented by commands that can check themselves without
// looking at state. Dispatch calls Validate before the unit of work starts;
// return a *ValidationError (or any error, which Dispatch wraps so that it
// matches ErrValidation).
type Validator interface {
	Validate() error
}

// Result is what a successful dispatch returns.
type Result struct {
	// Position is the read-your-writes token: the log position of the last
	// event the command committed, or the log head if it committed none.
	// Pass it to projection waits to read a view that includes the write.
	Position event.Position
}

// Handler is the untyped form of a dispatch, as seen by middleware.
type Handler func(ctx context.Context, cmd any) (Result, error)

// Middleware wraps every dispatch: validation, the unit of work, and the
// post-commit work. Middleware registered first is outermost.
type Middleware func(next Handler) Handler

// Syncer is post-commit work that Dispatch runs before returning, such as a
// projection runner bringing inline projectors up to the commit's position.
// projection.Runner implements it. A Syncer may also have a method
// Ready() error: Dispatch calls it before the unit of work and returns its
// error without committing (projection.Runner returns ErrNotStarted before
// Start).
type Syncer interface {
	Sync(ctx context.Context, pos event.Position) error
}

// Option configures New.
type Option func(*Bus)

// WithMiddleware appends middleware.
func WithMiddleware(mw ...Middleware) Option {
	return func(b *Bus) { b.mw = append(b.mw, mw...) }
}

// WithSyncer adds post-commit work; see Syncer.
func WithSyncer(s Syncer) Option {
	return func(b *Bus) { b.syncers = append(b.syncers, s) }
}

// Bus registers typed command handlers and dispatches commands to them. It is
// safe for concurrent use once registration is done (Register may also be
// called concurrently with Dispatch).
type Bus struct {
	st       store.Store
	mw       []Middleware
	syncers  []Syncer
	mu       sync.RWMutex
	handlers map[reflect.Type]func(ctx context.Context, tx store.Tx, cmd any) error
	chain    Handler
}

// New returns a Bus whose handlers run in units of work of st.
func New(st store.Store, opts ...Option) *Bus {
	b := &Bus{st: st, handlers: make(map[reflect.Type]func(context.Context, store.Tx, any) error)}
	for _, o := range opts {
		o(b)
	}
	h := b.dispatch
	for i := len(b.mw) - 1; i >= 0; i-- {
		h = b.mw[i](h)
	}
	b.chain = h
	return b
}

// Register sets the handler for commands of type C. The handler validates
// against the write store (the row exists, the caller owns it), changes
// tables through tx and records events with tx.Record; returning an error
// rolls all of it back. It panics if C already has a handler.
func Register[C any](b *Bus, h func(ctx context.Context, tx store.Tx, cmd C) error) {
	t := reflect.TypeFor[C]()
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.handlers[t]; dup {
		panic(fmt.Sprintf("command: handler for %v registered twice", t))
	}
	b.handlers[t] = func(ctx context.Context, tx store.Tx, cmd any) error {
		return h(ctx, tx, cmd.(C))
	}
}

// Dispatch validates cmd, runs its handler in one unit of work, runs
// post-commit work, and returns the position token.
//
// Errors (all leave no state change and no event, except ErrAfterCommit):
// ErrNoHandler (*NoHandlerError); ErrValidation (*ValidationError) from
// Validate or the handler; whatever the handler returns, typically
// ErrNotFound, ErrForbidden or ErrConflict; store.ErrClosed; ctx.Err().
// ErrAfterCommit (*AfterCommitError) means the command did commit, at the
// position it carries, and the returned Result is valid.
func (b *Bus) Dispatch(ctx context.Context, cmd any) (Result, error) {
	return b.chain(ctx, cmd)
}

// Dispatch is a typed shorthand for b.Dispatch; it lets the compiler check
// that cmd is the type the caller meant.
func Dispatch[C any](ctx context.Context, b *Bus, cmd C) (Result, error) {
	return b.chain(ctx, cmd)
}

func (b *Bus) dispatch(ctx context.Context, cmd any) (Result, error) {
	b.mu.RLock()
	h := b.handlers[reflect.TypeOf(cmd)]
	b.mu.RUnlock()
	if h == nil {
		return Result{}, &NoHandlerError{Type: fmt.Sprintf("%T", cmd)}
	}
	if v, ok := cmd.(Validator); ok {
		if err := v.Validate(); err != nil {
			if _, typed := err.(*ValidationError); !typed {
				err = fmt.Errorf("%w: %w", ErrValidation, err)
			}
			return Result{}, err
		}
	}
	for _, s := range b.syncers {
		// A syncer that cannot run yet (a runner not started) refuses
		// the command before it commits.
		if r, ok := s.(interface{ Ready() error }); ok {
			if err := r.Ready(); err != nil {
				return Result{}, err
			}
		}
	}
	pos, err := b.st.Update(ctx, func(tx store.Tx) error { return h(ctx, tx, cmd) })
	if err != nil {
		return Result{}, err
	}
	res := Result{Position: pos}
	for _, s := range b.syncers {
		if err := s.Sync(ctx, pos); err != nil {
			return res, &AfterCommitError{Position: pos, Err: err}
		}
	}
	return res, nil
}
