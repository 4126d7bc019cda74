package event

import (
	"errors"
	"fmt"
)

// ErrPanic is matched by a *PanicError: a command handler or a projector
// panicked and the library turned the panic into an error.
var ErrPanic = errors.New("cqrs: handler panicked")

// PanicError carries a recovered panic value and the stack where it was
// raised. Command dispatch (command.Recover) and projection delivery both
// report panics with it. It matches ErrPanic and, when the panic value is an
// error, unwraps to it.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("cqrs: handler panicked: %v", e.Value) }

// Is makes PanicError match ErrPanic.
func (e *PanicError) Is(target error) bool { return target == ErrPanic }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
