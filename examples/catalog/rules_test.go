package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/store"
)

// shop opens a catalog with seller s1 (and s2) and product p1 (stock 10)
// and counts handler runs (the middleware of Config runs inside Retry, so
// it sees every attempt).
func shop(t *testing.T) (*store.Memory, *catalog.App, *atomic.Int32) {
	t.Helper()
	st := store.NewMemory()
	runs := &atomic.Int32{}
	app, err := catalog.Open(context.Background(), st, st, catalog.Config{Middleware: []command.Middleware{
		command.Observe(func(any, time.Duration, error) { runs.Add(1) }),
	}})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close(); st.Close() })
	for _, c := range []any{
		catalog.RegisterSeller{SellerID: "s1", Name: "Acme", Rating: 4},
		catalog.RegisterSeller{SellerID: "s2", Name: "Other"},
		catalog.ListProduct{ProductID: "p1", SellerID: "s1", Title: "Kettle", PriceCents: 5000, Stock: 10},
	} {
		_, err := app.Dispatch(context.Background(), c)
		require.NoError(t, err)
	}
	runs.Store(0)
	return st, app, runs
}

// Creating what exists is ErrAlreadyExists (a *store.AlreadyExistsError):
// not a validation error, not a conflict, and it is not retried.
func TestDuplicateIsAlreadyExistsAndNotRetried(t *testing.T) {
	st, app, runs := shop(t)
	ctx := context.Background()
	_, err := app.Dispatch(ctx, catalog.SubmitReview{ReviewID: "r1", ProductID: "p1", Author: "ann", Rating: 5})
	require.NoError(t, err)
	head, _ := st.Head(ctx)
	for _, cmd := range []any{
		catalog.ListProduct{ProductID: "p1", SellerID: "s1", Title: "Again", PriceCents: 1},
		catalog.RegisterSeller{SellerID: "s1", Name: "Again"},
		catalog.SubmitReview{ReviewID: "r1", ProductID: "p1", Author: "bob", Rating: 1},
	} {
		t.Run(fmt.Sprintf("%T", cmd), func(t *testing.T) {
			runs.Store(0)
			_, err := app.Dispatch(ctx, cmd)
			require.ErrorIs(t, err, store.ErrAlreadyExists)
			var ae *store.AlreadyExistsError
			require.ErrorAs(t, err, &ae)
			assert.NotErrorIs(t, err, command.ErrValidation)
			assert.NotErrorIs(t, err, store.ErrConflict)
			assert.EqualValues(t, 1, runs.Load(), "a duplicate is not retried")
			h, _ := st.Head(ctx)
			assert.Equal(t, head, h)
		})
	}
}

// Reserving more than is in stock is a business-rule rejection with a code.
func TestReserveStockRejectsInsufficientStock(t *testing.T) {
	st, app, runs := shop(t)
	ctx := context.Background()
	_, err := app.Dispatch(ctx, catalog.ReserveStock{ProductID: "p1", Quantity: 4})
	require.NoError(t, err)
	head, _ := st.Head(ctx)
	runs.Store(0)
	_, err = app.Dispatch(ctx, catalog.ReserveStock{ProductID: "p1", Quantity: 7})
	require.ErrorIs(t, err, command.ErrRejected)
	var rej *command.RejectedError
	require.ErrorAs(t, err, &rej)
	assert.Equal(t, catalog.CodeInsufficientStock, rej.Code)
	assert.Contains(t, rej.Message, "6")
	assert.EqualValues(t, 1, runs.Load(), "a rejection is not retried")
	h, _ := st.Head(ctx)
	assert.Equal(t, head, h, "no event")

	_, err = app.Dispatch(ctx, catalog.ReserveStock{ProductID: "p1", Quantity: 6})
	require.NoError(t, err)
	v, _ := app.Views.Product("p1")
	assert.Equal(t, 0, v.Stock)
	assert.False(t, v.InStock)
	_, err = app.Dispatch(ctx, catalog.ReserveStock{ProductID: "p1", Quantity: 1})
	assert.ErrorIs(t, err, command.ErrRejected)

	_, err = app.Dispatch(ctx, catalog.Restock{ProductID: "p1", SellerID: "s2", Quantity: 5})
	assert.ErrorIs(t, err, command.ErrForbidden, "only the seller restocks")
	_, err = app.Dispatch(ctx, catalog.Restock{ProductID: "p1", SellerID: "s1", Quantity: 5})
	require.NoError(t, err)
	v, _ = app.Views.Product("p1")
	assert.Equal(t, 5, v.Stock)
	assert.True(t, v.InStock)
	assert.Equal(t, []string{"p1"}, app.Views.InStock("", 10, nil))

	_, err = app.Dispatch(ctx, catalog.UpdateStock{ProductID: "p1", SellerID: "s1", Stock: catalog.MaxStock - 1})
	require.NoError(t, err)
	_, err = app.Dispatch(ctx, catalog.Restock{ProductID: "p1", SellerID: "s1", Quantity: 2})
	require.ErrorAs(t, err, &rej)
	assert.Equal(t, catalog.CodeStockLimit, rej.Code)
	_, err = app.Dispatch(ctx, catalog.ReserveStock{ProductID: "nope", Quantity: 1})
	assert.ErrorIs(t, err, store.ErrNotFound)
	_, err = app.Dispatch(ctx, catalog.ReserveStock{ProductID: "p1", Quantity: 0})
	assert.ErrorIs(t, err, command.ErrValidation)
}

// 200 concurrent reservations of one unit each leave exactly 200 fewer.
func TestConcurrentReservesAreExact(t *testing.T) {
	_, app, _ := shop(t)
	ctx := context.Background()
	_, err := app.Dispatch(ctx, catalog.UpdateStock{ProductID: "p1", SellerID: "s1", Stock: 1000})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			_, err := app.Dispatch(ctx, catalog.ReserveStock{ProductID: "p1", Quantity: 1})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	v, _ := app.Views.Product("p1")
	assert.Equal(t, 800, v.Stock)
}

// Reserving concurrently past zero: exactly the available units are
// reserved, the rest are rejected, stock ends at zero.
func TestConcurrentReservesNeverGoBelowZero(t *testing.T) {
	_, app, _ := shop(t)
	ctx := context.Background()
	var ok, rejected atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := app.Dispatch(ctx, catalog.ReserveStock{ProductID: "p1", Quantity: 1})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, command.ErrRejected):
				rejected.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 10, ok.Load())
	assert.EqualValues(t, 40, rejected.Load())
	v, _ := app.Views.Product("p1")
	assert.Equal(t, 0, v.Stock)
}

// Absolute updates carry the version a client read from the view; a stale
// one is a conflict (not retried) and changes nothing.
func TestAbsoluteUpdatesCheckExpectedVersion(t *testing.T) {
	st, app, runs := shop(t)
	ctx := context.Background()
	v, _ := app.Views.Product("p1")
	require.EqualValues(t, 1, v.Version)
	_, err := app.Dispatch(ctx, catalog.UpdateStock{ProductID: "p1", SellerID: "s1", Stock: 7, ExpectedVersion: v.Version})
	require.NoError(t, err)
	v2, _ := app.Views.Product("p1")
	assert.EqualValues(t, 2, v2.Version)
	assert.Equal(t, 7, v2.Stock)

	head, _ := st.Head(ctx)
	for _, cmd := range []any{
		catalog.UpdateStock{ProductID: "p1", SellerID: "s1", Stock: 3, ExpectedVersion: v.Version},
		catalog.UpdatePrice{ProductID: "p1", SellerID: "s1", PriceCents: 99, ExpectedVersion: v.Version},
		catalog.UpdateDetails{ProductID: "p1", SellerID: "s1", Title: "New", ExpectedVersion: v.Version},
		catalog.SetShipping{ProductID: "p1", SellerID: "s1", Options: []catalog.ShippingOption{{Method: "post"}}, ExpectedVersion: v.Version},
		catalog.UpdateStock{ProductID: "p1", SellerID: "s1", Stock: 7, ExpectedVersion: v.Version}, // stale and a no-op: still stale
	} {
		runs.Store(0)
		_, err := app.Dispatch(ctx, cmd)
		require.ErrorIs(t, err, store.ErrConflict, "%T", cmd)
		var se *command.StaleError
		require.ErrorAs(t, err, &se)
		assert.EqualValues(t, 2, se.Actual)
		assert.EqualValues(t, 1, runs.Load(), "a stale version is not retried")
	}
	h, _ := st.Head(ctx)
	assert.Equal(t, head, h)
	after, _ := app.Views.Product("p1")
	assert.Equal(t, v2, after)

	// 200 concurrent read-then-set decrements with the version read: each
	// either lands or is a conflict; none is lost.
	var wg sync.WaitGroup
	var landed atomic.Int32
	for range 200 {
		wg.Go(func() {
			cur, _ := app.Views.Product("p1")
			_, err := app.Dispatch(ctx, catalog.UpdateStock{ProductID: "p1", SellerID: "s1", Stock: cur.Stock + 1000, ExpectedVersion: cur.Version})
			if err == nil {
				landed.Add(1)
			} else {
				assert.ErrorIs(t, err, store.ErrConflict)
			}
		})
	}
	wg.Wait()
	final, _ := app.Views.Product("p1")
	assert.Equal(t, 7+1000*int(landed.Load()), final.Stock)
}

// A command that would change nothing records no event and moves no version.
func TestNoOpCommandsRecordNothing(t *testing.T) {
	st, app, _ := shop(t)
	ctx := context.Background()
	opts := []catalog.ShippingOption{{Method: "standard", PriceCents: 0, Days: 5}, {Method: "express", PriceCents: 900, Days: 1}}
	for _, c := range []any{
		catalog.SetShipping{ProductID: "p1", SellerID: "s1", Options: opts},
		catalog.UpdateDetails{ProductID: "p1", SellerID: "s1", Title: "Kettle", Description: "Boils water."},
	} {
		_, err := app.Dispatch(ctx, c)
		require.NoError(t, err)
	}
	for _, cmd := range []any{
		catalog.RenameSeller{SellerID: "s1", Name: "Acme"},
		catalog.RateSeller{SellerID: "s1", Rating: 4},
		catalog.UpdatePrice{ProductID: "p1", SellerID: "s1", PriceCents: 5000},
		catalog.UpdateStock{ProductID: "p1", SellerID: "s1", Stock: 10},
		catalog.UpdateDetails{ProductID: "p1", SellerID: "s1", Title: "Kettle", Description: "Boils water."},
		catalog.SetShipping{ProductID: "p1", SellerID: "s1", Options: append([]catalog.ShippingOption(nil), opts...)},
		catalog.SetShipping{ProductID: "p2-none", SellerID: "s1"}, // not found, listed below
	} {
		t.Run(fmt.Sprintf("%T", cmd), func(t *testing.T) {
			head, _ := st.Head(ctx)
			before, _ := app.Views.Product("p1")
			res, err := app.Dispatch(ctx, cmd)
			if c, ok := cmd.(catalog.SetShipping); ok && c.ProductID == "p2-none" {
				require.ErrorIs(t, err, store.ErrNotFound)
				return
			}
			require.NoError(t, err)
			h, _ := st.Head(ctx)
			assert.Equal(t, head, h, "no event")
			assert.Equal(t, head, res.Position, "the token is the head")
			after, _ := app.Views.Product("p1")
			assert.Equal(t, before, after)
		})
	}
	// No shipping options set twice on a product that has none: a no-op too.
	_, err := app.Dispatch(ctx, catalog.ListProduct{ProductID: "p2", SellerID: "s1", Title: "Mug", PriceCents: 900})
	require.NoError(t, err)
	head, _ := st.Head(ctx)
	_, err = app.Dispatch(ctx, catalog.SetShipping{ProductID: "p2", SellerID: "s1"})
	require.NoError(t, err)
	h, _ := st.Head(ctx)
	assert.Equal(t, head, h)
}

// A pointer to a catalog command is dispatched like the value.
func TestDispatchPointerCommand(t *testing.T) {
	_, app, _ := shop(t)
	_, err := app.Dispatch(context.Background(), &catalog.UpdatePrice{ProductID: "p1", SellerID: "s1", PriceCents: 4200})
	require.NoError(t, err)
	v, _ := app.Views.Product("p1")
	assert.EqualValues(t, 4200, v.PriceCents)
	_, err = command.Dispatch(context.Background(), app.Bus, &catalog.ReserveStock{ProductID: "p1", Quantity: 1})
	require.NoError(t, err)
	_, err = app.Dispatch(context.Background(), &catalog.UpdatePrice{ProductID: "p1", SellerID: "s1"})
	assert.ErrorIs(t, err, command.ErrValidation)
}

// Text in every command is checked: valid UTF-8, no control characters,
// bounded length; every list bounded. Each case names the field at fault.
func TestTextValidation(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) }
	cases := []struct {
		name  string
		cmd   command.Validator
		field string // "" means valid
	}{
		{"non-ASCII title", catalog.ListProduct{ProductID: "p", SellerID: "s", Title: "Wasserkocher 電気ケトル ☕", PriceCents: 1}, ""},
		{"title at the limit", catalog.ListProduct{ProductID: "p", SellerID: "s", Title: long(catalog.MaxTitle), PriceCents: 1}, ""},
		{"title too long", catalog.ListProduct{ProductID: "p", SellerID: "s", Title: long(catalog.MaxTitle + 1), PriceCents: 1}, "Title"},
		{"invalid UTF-8 title", catalog.ListProduct{ProductID: "p", SellerID: "s", Title: "bad \xff", PriceCents: 1}, "Title"},
		{"NUL in title", catalog.ListProduct{ProductID: "p", SellerID: "s", Title: "a\x00b", PriceCents: 1}, "Title"},
		{"newline in title", catalog.ListProduct{ProductID: "p", SellerID: "s", Title: "a\nb", PriceCents: 1}, "Title"},
		{"newline in description", catalog.ListProduct{ProductID: "p", SellerID: "s", Title: "t", Description: "line 1\nline 2\ttab", PriceCents: 1}, ""},
		{"NUL in description", catalog.ListProduct{ProductID: "p", SellerID: "s", Title: "t", Description: "a\x00", PriceCents: 1}, "Description"},
		{"C1 control in description", catalog.ListProduct{ProductID: "p", SellerID: "s", Title: "t", Description: "a\u0085", PriceCents: 1}, "Description"},
		{"invalid UTF-8 ID", catalog.ListProduct{ProductID: "p\xc3", SellerID: "s", Title: "t", PriceCents: 1}, "ProductID"},
		{"ID too long", catalog.ListProduct{ProductID: strings.Repeat("p", catalog.MaxID+1), SellerID: "s", Title: "t", PriceCents: 1}, "ProductID"},
		{"stock too big", catalog.ListProduct{ProductID: "p", SellerID: "s", Title: "t", PriceCents: 1, Stock: catalog.MaxStock + 1}, "Stock"},
		{"seller name NUL", catalog.RegisterSeller{SellerID: "s", Name: "\x00"}, "Name"},
		{"seller name too long", catalog.RenameSeller{SellerID: "s", Name: long(catalog.MaxName + 1)}, "Name"},
		{"seller ID DEL", catalog.RateSeller{SellerID: "s\x7f", Rating: 1}, "SellerID"},
		{"review text too long", catalog.SubmitReview{ReviewID: "r", ProductID: "p", Author: "a", Rating: 1, Text: long(catalog.MaxReviewText + 1)}, "Text"},
		{"review author invalid", catalog.SubmitReview{ReviewID: "r", ProductID: "p", Author: "\xed\xa0\x80", Rating: 1}, "Author"},
		{"review ID NUL", catalog.SubmitReview{ReviewID: "r\x00", ProductID: "p", Author: "a", Rating: 1}, "ReviewID"},
		{"details title invalid", catalog.UpdateDetails{ProductID: "p", SellerID: "s", Title: "\xc0\xaf"}, "Title"},
		{"shipping method NUL", catalog.SetShipping{ProductID: "p", SellerID: "s", Options: []catalog.ShippingOption{{Method: "a\x00"}}}, "Options[0].Method"},
		{"shipping method too long", catalog.SetShipping{ProductID: "p", SellerID: "s", Options: []catalog.ShippingOption{{Method: "ok"}, {Method: strings.Repeat("m", catalog.MaxMethod+1)}}}, "Options[1].Method"},
		{"too many shipping options", catalog.SetShipping{ProductID: "p", SellerID: "s", Options: make([]catalog.ShippingOption, catalog.MaxShippingOptions+1)}, "Options"},
		{"shipping days too many", catalog.SetShipping{ProductID: "p", SellerID: "s", Options: []catalog.ShippingOption{{Method: "slow", Days: catalog.MaxShippingDays + 1}}}, "Options[0].Days"},
		{"shipping non-ASCII", catalog.SetShipping{ProductID: "p", SellerID: "s", Options: []catalog.ShippingOption{{Method: "Päckchen", Days: 3}}}, ""},
		{"reserve too many", catalog.ReserveStock{ProductID: "p", Quantity: catalog.MaxQuantity + 1}, "Quantity"},
		{"restock zero", catalog.Restock{ProductID: "p", SellerID: "s"}, "Quantity"},
		{"update stock invalid ID", catalog.UpdateStock{ProductID: "\xff", SellerID: "s"}, "ProductID"},
		{"price ID invalid", catalog.UpdatePrice{ProductID: "p", SellerID: "\x01", PriceCents: 1}, "SellerID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cmd.Validate()
			if c.field == "" {
				assert.NoError(t, err)
				return
			}
			var ve *command.ValidationError
			require.ErrorAs(t, err, &ve)
			msg, ok := ve.Field(c.field)
			assert.True(t, ok, "field %s not reported: %v", c.field, ve.Fields)
			assert.NotEmpty(t, msg)
			assert.Len(t, ve.Fields, 1, "%v", ve.Fields)
		})
	}
}
