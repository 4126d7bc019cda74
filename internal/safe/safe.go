// Package safe holds the library's one recover block: every place that runs
// user code (command handlers, projectors, test fixtures) calls Call, so a
// panic becomes the same *event.PanicError everywhere.
package safe

import (
	"runtime/debug"

	"github.com/cqrskit/cqrs/event"
)

// Call runs fn and returns its error, or a *event.PanicError if fn panics.
func Call(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &event.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}
