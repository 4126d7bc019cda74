package demo_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/examples/catalog/demo"
	"github.com/cqrskit/cqrs/store"
)

func TestDemoRuns(t *testing.T) {
	clk := demo.NewClock()
	st := store.NewMemory(store.WithClock(clk.Now))
	defer st.Close()
	var out bytes.Buffer
	require.NoError(t, demo.Run(context.Background(), &out, st, st, clk, 50))
	s := out.String()
	for _, want := range []string{
		"ErrValidation [{Rating must be between 1 and 5}]",
		"ErrForbidden",
		"ErrNotFound",
		"ErrNoHandler",
		": no event was written",
		`p-1  "Product 1" by Acme Outlet`,
		"price 30 days ago: $229.00",
		"price 90 days ago: $249.00",
		"after WaitFor the async view shows $12.34",
		"still shows $215.00",
	} {
		assert.Contains(t, s, want)
	}
}
