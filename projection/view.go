package projection

import (
	"context"
	"sync/atomic"

	"github.com/cqrskit/cqrs/event"
)

// View is a rebuildable projector over a read model M (typically a struct of
// readmodel building blocks) held behind one atomic pointer. route registers
// the typed handlers (event.On) that fold events into a model; NewView calls
// it for the live model and again for each shadow, so a rebuild builds a
// fresh model with the same logic and swaps it in atomically.
//
// Queries call Load for the current model; M's own methods must be safe for
// concurrent use with the projector (the readmodel types are).
type View[M any] struct {
	name     string
	newModel func() *M
	route    func(r *event.Router, m *M)
	cur      atomic.Pointer[viewModel[M]]
}

// viewModel is one model with the router that feeds it.
type viewModel[M any] struct {
	model  *M
	router event.Router
}

var (
	_ Projector = (*View[struct{}])(nil)
	_ Rebuilder = (*View[struct{}])(nil)
)

// NewView returns a View called name whose models are made by newModel and
// fed by the handlers route registers on r for m.
func NewView[M any](name string, newModel func() *M, route func(r *event.Router, m *M)) *View[M] {
	v := &View[M]{name: name, newModel: newModel, route: route}
	v.cur.Store(v.build())
	return v
}

func (v *View[M]) build() *viewModel[M] {
	vm := &viewModel[M]{model: v.newModel()}
	v.route(&vm.router, vm.model)
	return vm
}

// Name implements Projector.
func (v *View[M]) Name() string { return v.name }

// Handle implements Projector: it applies rec to the live model.
func (v *View[M]) Handle(ctx context.Context, rec event.Record) error {
	return v.cur.Load().router.Handle(ctx, rec)
}

// Shadow implements Rebuilder: a fresh model, swapped in by storing its
// pointer.
func (v *View[M]) Shadow(context.Context) (Shadow, error) {
	vm := v.build()
	return Shadow{Handler: &vm.router, Swap: func() { v.cur.Store(vm) }}, nil
}

// Load returns the live model.
func (v *View[M]) Load() *M { return v.cur.Load().model }
