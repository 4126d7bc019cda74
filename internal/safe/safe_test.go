package safe_test

import (
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/internal/safe"
)

func TestCallTurnsPanicsIntoPanicError(t *testing.T) {
	err := safe.Call(func() error { panic(io.EOF) })
	var pe *event.PanicError
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, err, event.ErrPanic)
	require.ErrorIs(t, err, io.EOF, "an error panic value is reachable")
	require.NotEmpty(t, pe.Stack)

	want := errors.New("plain")
	require.Same(t, want, safe.Call(func() error { return want }))
	require.NoError(t, safe.Call(func() error { return nil }))
}
