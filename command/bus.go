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

// DispatchFunc is the dispatch chain as middleware sees it: a call that
// dispatches cmd (validation, the unit of work and the post-commit work, or
// the middleware below) and returns its result. It is not a command handler:
// handlers are registered with Register and run inside the unit of work.
type DispatchFunc func(ctx context.Context, cmd any) (Result, error)

// Middleware wraps every dispatch: validation, the unit of work, and the
// post-commit work. Middleware registered first is outermost.
type Middleware func(next DispatchFunc) DispatchFunc

// Syncer is post-commit work that Dispatch runs before returning, such as a
// projection runner bringing inline projectors up to the commit's position.
// projection.Runner implements it. A Syncer may also have a method
// Ready() error: Dispatch calls it before the unit of work and returns its
// error without committing (projection.Runner refuses before Start and
// after Close).
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
	handlers map[reflect.Type]*entry
	chain    DispatchFunc
}

// entry is what Register records for one command type.
type entry struct {
	handle func(ctx context.Context, tx store.Tx, cmd any) error
	// validate is nil when the type has no Validate method (on the value
	// or on its pointer).
	validate func(cmd any) error
}

var validatorType = reflect.TypeFor[Validator]()

// New returns a Bus whose handlers run in units of work of st.
func New(st store.Store, opts ...Option) *Bus {
	b := &Bus{st: st, handlers: make(map[reflect.Type]*entry)}
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
// rolls all of it back.
//
// Register a value type (UpdatePrice, not *UpdatePrice): Dispatch accepts
// the value and a pointer to it alike. If C's Validate method has a pointer
// receiver, Dispatch still calls it (on a copy).
//
// Register returns no error: wiring mistakes panic at start-up. It panics if
// C already has a handler, or if C is an interface type (a dispatched
// command always has a concrete type, so such a handler could never run).
func Register[C any](b *Bus, h func(ctx context.Context, tx store.Tx, cmd C) error) {
	t := reflect.TypeFor[C]()
	if t.Kind() == reflect.Interface {
		panic(fmt.Sprintf("command: handler registered for interface type %v; register the concrete command type", t))
	}
	e := &entry{handle: func(ctx context.Context, tx store.Tx, cmd any) error {
		return h(ctx, tx, cmd.(C))
	}}
	switch {
	case t.Implements(validatorType):
		e.validate = func(cmd any) error { return cmd.(Validator).Validate() }
	case t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(validatorType):
		e.validate = func(cmd any) error {
			c := cmd.(C)
			return any(&c).(Validator).Validate()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.handlers[t]; dup {
		panic(fmt.Sprintf("command: handler for %v registered twice", t))
	}
	b.handlers[t] = e
}

// Dispatch validates cmd, runs its handler in one unit of work, runs
// post-commit work, and returns the position token.
//
// cmd is the command value, or a pointer to it: a non-nil *C reaches the
// handler registered for C (unless *C has a handler of its own), and the
// middleware sees the C. A nil *C is rejected with ErrValidation.
//
// Errors (none leaves a state change or an event, except ErrAfterCommit):
//   - *NoHandlerError: no handler is registered for cmd's type, a wiring
//     mistake; it matches no sentinel (errors.As reaches it);
//   - ErrValidation (*ValidationError): Validate failed, the handler found
//     the input invalid, or cmd is a nil pointer;
//   - whatever the handler returns, typically store.ErrNotFound
//     (*store.NotFoundError), ErrForbidden
//     (*ForbiddenError), store.ErrAlreadyExists (*store.AlreadyExistsError),
//     ErrRejected (*RejectedError) or store.ErrConflict
//     (*store.ConflictError, *StaleError);
//   - the store's own: store.ErrClosed, store.ErrUnavailable (a durable
//     store's infrastructure failure), ctx.Err();
//   - a Syncer's Ready error, returned before the unit of work starts;
//   - ErrAfterCommit (*AfterCommitError): the command did commit, at the
//     position it carries, and the returned Result is valid.
//
// Middleware adds its own: see Authorize, Retry and Recover.
func (b *Bus) Dispatch(ctx context.Context, cmd any) (Result, error) {
	return b.chain(ctx, b.deref(cmd))
}

// Dispatch is a typed shorthand for b.Dispatch; it lets the compiler check
// that cmd is the type the caller meant. C may be the registered type or a
// pointer to it, exactly as for b.Dispatch, and it returns the same errors.
func Dispatch[C any](ctx context.Context, b *Bus, cmd C) (Result, error) {
	return b.chain(ctx, b.deref(cmd))
}

// deref turns a non-nil pointer into the value it points to when the
// handler is registered on the value type, so that middleware, validation
// and the handler all see the registered type.
func (b *Bus) deref(cmd any) any {
	t := reflect.TypeOf(cmd)
	if t == nil || t.Kind() != reflect.Pointer {
		return cmd
	}
	b.mu.RLock()
	_, exact := b.handlers[t]
	_, elem := b.handlers[t.Elem()]
	b.mu.RUnlock()
	if exact || !elem {
		return cmd
	}
	v := reflect.ValueOf(cmd)
	if v.IsNil() {
		return cmd // dispatch rejects it
	}
	return v.Elem().Interface()
}

func (b *Bus) dispatch(ctx context.Context, cmd any) (Result, error) {
	t := reflect.TypeOf(cmd)
	b.mu.RLock()
	e := b.handlers[t]
	b.mu.RUnlock()
	if e == nil {
		return Result{}, b.noHandler(t)
	}
	if e.validate != nil {
		if err := e.validate(cmd); err != nil {
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
	f := framePool.Get().(*frame)
	f.ctx, f.e, f.cmd = ctx, e, cmd
	pos, err := b.st.Update(ctx, f.run)
	// Store.Update does not keep fn once it returns, so the frame can be
	// reused (after a panic it is simply dropped).
	f.ctx, f.e, f.cmd = nil, nil, nil
	framePool.Put(f)
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

// frame carries one dispatch into its unit of work. A closure over ctx, the
// entry and cmd would be a heap allocation per dispatch; frames are pooled,
// and each binds its run method value once, when it is made.
type frame struct {
	ctx context.Context
	e   *entry
	cmd any
	run func(tx store.Tx) error // f.handle
}

func (f *frame) handle(tx store.Tx) error { return f.e.handle(f.ctx, tx, f.cmd) }

var framePool = sync.Pool{New: func() any {
	f := new(frame)
	f.run = f.handle
	return f
}}

// noHandler explains a dispatch of type t that has no handler.
func (b *Bus) noHandler(t reflect.Type) error {
	if t == nil {
		return &NoHandlerError{Type: "<nil>", Hint: "the command is a nil interface"}
	}
	nh := &NoHandlerError{Type: t.String()}
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case t.Kind() == reflect.Pointer && b.handlers[t.Elem()] != nil:
		// Only a nil pointer gets here: deref passes the others on as values.
		return fmt.Errorf("%w: the command is a nil %v", ErrValidation, t)
	case t.Kind() != reflect.Pointer && b.handlers[reflect.PointerTo(t)] != nil:
		nh.Hint = "the handler is registered for *" + t.String() + ": dispatch a pointer, or register the value type"
	}
	return nh
}
