package demo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/command"
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
		"SubmitReview   -> invalid: Rating must be between 1 and 5\n",
		"ListProduct    -> invalid: Title is not valid UTF-8; Description contains the control character U+0000\n",
		"forbidden: seller s-intruder does not own product p-1\n",
		`not found: product "p-missing" does not exist`,
		`ListProduct    -> already exists: products already has "p-1"`,
		"ReserveStock   -> rejected (insufficient_stock): product p-1 has",
		"UpdateStock    -> conflict: product/p-1 changed since version",
		"no handler: nothing handles a struct { Name string }",
		": no event was written",
		"40 concurrent ReserveStock of 3: 33 accepted, 7 rejected (insufficient stock); stock 100 -> 1\n",
		"Restock p-3 by 50: stock 51\n",
		"UpdateStock p-3 to 0 at the version read before the reservations (8): conflict:",
		`p-1  "Product 1" by Acme Outlet`,
		"price 30 days ago: $229.00",
		"price 90 days ago: $249.00",
		"after WaitFor the async view shows $12.34",
		"still shows $215.00",
	} {
		assert.Contains(t, s, want)
	}
	assert.NotContains(t, s, "[{", "no Go structs in the output")
	assert.NotContains(t, s, "command: ", "errors are described, not dumped")
	// The closing status lists every projector the demo ran, the async one
	// included, all caught up.
	status := s[strings.Index(s, "== Status of every projector =="):]
	for _, want := range []string{
		`status catalog\.views +inline running +checkpoint (\d+), head \d+, behind 0`,
		`status catalog\.trending +inline running +checkpoint \d+, head \d+, behind 0`,
		`status catalog\.views \(async copy\) async +running +checkpoint \d+, head \d+, behind 0`,
	} {
		assert.Regexp(t, want, status)
	}
	assert.Equal(t, 3, strings.Count(status, "\nstatus "))
}

func TestDescribe(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "accepted"},
		{command.Invalid("Title", "is required").Add("PriceCents", "must be between 1 and 100"), "invalid: Title is required; PriceCents must be between 1 and 100"},
		{fmt.Errorf("wrapped: %w", command.Reject("no_seats_left", "flight LH1 is full")), "rejected (no_seats_left): flight LH1 is full"},
		{&store.AlreadyExistsError{Table: "sellers", Key: "s1"}, `already exists: sellers already has "s1"`},
		{&command.StaleError{Stream: "product/p1", Expected: 2, Actual: 5}, "conflict: product/p1 changed since version 2 (it is at 5 now); read it again"},
		{&store.ConflictError{Table: "products", Key: "p1", Expected: 1, Actual: 2}, "conflict: a concurrent change won; try again"},
		{command.Forbidden("no"), "forbidden: no"},
		{&command.NoHandlerError{Type: "main.X"}, "no handler: nothing handles a main.X"},
		{errors.New("disk on fire"), "error: disk on fire"},
	} {
		assert.Equal(t, c.want, demo.Describe(c.err))
	}
}
