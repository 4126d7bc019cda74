package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// fixed is the commit time of every event in these tests, so that views
// built on the two stores can be compared field by field.
var fixed = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return fixed }

// backend is one catalog on one store.
type backend struct {
	name string
	app  *catalog.App
	st   store.Store
	lg   store.Log
}

func pgURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("CQRSKIT_POSTGRES_URL")
	if url == "" {
		t.Skip("CQRSKIT_POSTGRES_URL is not set; skipping the memory-versus-PostgreSQL catalog test " +
			"(e.g. CQRSKIT_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return url
}

func memoryBackend(t *testing.T) backend {
	t.Helper()
	st := store.NewMemory(store.WithClock(clock))
	app, err := catalog.Open(context.Background(), st, st, catalog.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { app.Close(); st.Close() })
	return backend{"memory", app, st, st}
}

func postgresBackend(t *testing.T, url string) backend {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	reg := event.NewRegistry()
	require.NoError(t, catalog.RegisterEvents(reg))
	schema := fmt.Sprintf("cqrskit_cattest_%d", time.Now().UnixNano())
	st, err := pgstore.New(ctx, pool, reg, pgstore.WithSchema(schema), pgstore.WithClock(clock), pgstore.WithPollInterval(20*time.Millisecond))
	require.NoError(t, err)
	app, err := catalog.Open(ctx, st, st, catalog.Config{})
	require.NoError(t, err)
	t.Cleanup(func() {
		app.Close()
		st.Close()
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		pool.Close()
	})
	return backend{"postgres", app, st, st}
}

// both returns the catalog on memory and on PostgreSQL, or skips.
func both(t *testing.T) []backend {
	url := pgURL(t)
	return []backend{memoryBackend(t), postgresBackend(t, url)}
}

// outcome classifies a dispatch error by the sentinels a caller branches on.
func outcome(err error) string {
	if err == nil {
		return "accepted"
	}
	for _, s := range []struct {
		name string
		err  error
	}{
		{"validation", command.ErrValidation}, {"not found", store.ErrNotFound},
		{"forbidden", command.ErrForbidden}, {"already exists", store.ErrAlreadyExists},
		{"rejected", command.ErrRejected}, {"conflict", store.ErrConflict},
		{"store invalid", store.ErrInvalid},
	} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "untyped: " + err.Error()
}

// Memory and PostgreSQL accept and reject exactly the same text, and what
// they accept reads back byte for byte (no U+FFFD rewriting, no NUL error
// from the database).
func TestTextSameOnMemoryAndPostgres(t *testing.T) {
	backends := both(t)
	ctx := context.Background()
	for _, b := range backends {
		for _, c := range []any{
			catalog.RegisterSeller{SellerID: "s1", Name: "Acme"},
			catalog.ListProduct{ProductID: "p1", SellerID: "s1", Title: "Kettle", PriceCents: 100},
		} {
			_, err := b.app.Dispatch(ctx, c)
			require.NoError(t, err, b.name)
		}
	}
	rep := strings.Repeat
	n := 0
	next := func() string { n++; return fmt.Sprintf("x%d", n) }
	type tcase struct {
		name string
		cmd  func(id string) any
		want string
		// title is what the view of product id must show when accepted.
		title string
	}
	list := func(title, desc string) func(string) any {
		return func(id string) any {
			return catalog.ListProduct{ProductID: id, SellerID: "s1", Title: title, Description: desc, PriceCents: 100}
		}
	}
	cases := []tcase{
		{"ASCII", list("Kettle", ""), "accepted", "Kettle"},
		{"non-ASCII", list("Wasserkocher – 電気ケトル ☕ 🫖", "Ünïcödé\nzweite Zeile\tmit Tab"), "accepted", "Wasserkocher – 電気ケトル ☕ 🫖"},
		{"combining and RTL", list("e\u0301 שלום مرحبا", ""), "accepted", "e\u0301 שלום مرحبا"},
		{"replacement character itself", list("\uFFFD ok", ""), "accepted", "\uFFFD ok"},
		{"title of 200 four-byte characters", list(rep("🫖", catalog.MaxTitle), ""), "accepted", rep("🫖", catalog.MaxTitle)},
		{"title too long", list(rep("a", catalog.MaxTitle+1), ""), "validation", ""},
		{"invalid UTF-8 title", list("bad \xff title", ""), "validation", ""},
		{"truncated UTF-8 title", list("caf\xc3", ""), "validation", ""},
		{"surrogate half (CESU-8)", list("\xed\xa0\x80", ""), "validation", ""},
		{"NUL in title", list("a\x00b", ""), "validation", ""},
		{"NUL in description", list("t", "a\x00b"), "validation", ""},
		{"escape character", list("a\x1bb", ""), "validation", ""},
		{"C1 control", list("a\u0085b", ""), "validation", ""},
		{"description too long", list("t", rep("é", catalog.MaxDescription+1)), "validation", ""},
		{"description at the limit", list("t", rep("é", catalog.MaxDescription)), "accepted", "t"},
		{"invalid UTF-8 ID", func(string) any {
			return catalog.ListProduct{ProductID: "p\xff", SellerID: "s1", Title: "t", PriceCents: 1}
		}, "validation", ""},
		{"NUL in ID", func(string) any {
			return catalog.ListProduct{ProductID: "p\x00", SellerID: "s1", Title: "t", PriceCents: 1}
		}, "validation", ""},
		{"non-ASCII ID of 64 characters", func(string) any {
			return catalog.ListProduct{ProductID: rep("ü", catalog.MaxID), SellerID: "s1", Title: "t", PriceCents: 1}
		}, "accepted", ""},
		{"ID too long", func(string) any {
			return catalog.ListProduct{ProductID: rep("p", catalog.MaxID+1), SellerID: "s1", Title: "t", PriceCents: 1}
		}, "validation", ""},
		{"seller name NUL", func(id string) any { return catalog.RegisterSeller{SellerID: id, Name: "a\x00"} }, "validation", ""},
		{"seller name non-ASCII", func(id string) any { return catalog.RegisterSeller{SellerID: id, Name: "Łódź Ħandel"} }, "accepted", ""},
		{"seller name invalid UTF-8", func(string) any { return catalog.RenameSeller{SellerID: "s1", Name: "\xfe"} }, "validation", ""},
		{"review text invalid UTF-8", func(id string) any {
			return catalog.SubmitReview{ReviewID: id, ProductID: "p1", Author: "ann", Rating: 5, Text: "gut \xc0"}
		}, "validation", ""},
		{"review text non-ASCII multi-line", func(id string) any {
			return catalog.SubmitReview{ReviewID: id, ProductID: "p1", Author: "Zoë", Rating: 5, Text: "Très bien.\r\nСпасибо!"}
		}, "accepted", ""},
		{"review author NUL", func(id string) any {
			return catalog.SubmitReview{ReviewID: id, ProductID: "p1", Author: "\x00", Rating: 5}
		}, "validation", ""},
		{"shipping method NUL", func(string) any {
			return catalog.SetShipping{ProductID: "p1", SellerID: "s1", Options: []catalog.ShippingOption{{Method: "post\x00"}}}
		}, "validation", ""},
		{"shipping method invalid UTF-8", func(string) any {
			return catalog.SetShipping{ProductID: "p1", SellerID: "s1", Options: []catalog.ShippingOption{{Method: "\xff"}}}
		}, "validation", ""},
		{"too many shipping options", func(string) any {
			opts := make([]catalog.ShippingOption, catalog.MaxShippingOptions+1)
			for i := range opts {
				opts[i].Method = fmt.Sprint("m", i)
			}
			return catalog.SetShipping{ProductID: "p1", SellerID: "s1", Options: opts}
		}, "validation", ""},
		{"shipping non-ASCII", func(string) any {
			return catalog.SetShipping{ProductID: "p1", SellerID: "s1", Options: []catalog.ShippingOption{{Method: "Päckchen 📦", Days: 3}}}
		}, "accepted", ""},
		{"details invalid UTF-8", func(string) any {
			return catalog.UpdateDetails{ProductID: "p1", SellerID: "s1", Title: "ok", Description: "\xff"}
		}, "validation", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := next()
			cmd := c.cmd(id)
			for _, b := range backends {
				_, err := b.app.Dispatch(ctx, cmd)
				assert.Equal(t, c.want, outcome(err), "%s: %v", b.name, err)
			}
			if c.title != "" {
				for _, b := range backends {
					v, ok := b.app.Views.Product(id)
					require.True(t, ok, b.name)
					assert.Equal(t, c.title, v.Title, "%s: the title reads back unchanged", b.name)
					assert.Equal(t, cmd.(catalog.ListProduct).Description, v.Description, b.name)
				}
			}
		})
	}
	// Everything each store accepted is the same: compare the views.
	assertSameViews(t, backends)
}

// The random command mix (every command type, rejections, stale versions,
// no-ops) gives the same outcome for every command and the same views on
// memory and PostgreSQL.
func TestCommandMixSameOnMemoryAndPostgres(t *testing.T) {
	backends := both(t)
	ctx := context.Background()
	const sellers, products = 4, 25
	n := 800
	if testing.Short() {
		n = 200
	}
	gen := catalog.NewGen(7, sellers, products)
	cmds := gen.Seed(1)
	for range n {
		cmds = append(cmds, gen.Next())
	}
	kinds := map[string]int{}
	for i, c := range cmds {
		var want string
		for j, b := range backends {
			_, err := b.app.Dispatch(ctx, c)
			got := outcome(err)
			if j == 0 {
				want = got
				kinds[got]++
			} else {
				require.Equal(t, want, got, "command %d %T %+v on %s: %v", i, c, c, b.name, err)
			}
		}
	}
	t.Logf("outcomes: %v", kinds)
	for _, k := range []string{"accepted", "validation", "not found", "forbidden", "already exists", "rejected", "conflict"} {
		assert.Positive(t, kinds[k], k)
	}
	assertSameViews(t, backends)
}

// 200 concurrent reservations on PostgreSQL end at exactly the right stock:
// the relative command retries transient row conflicts and loses nothing.
func TestConcurrentReservesOnPostgres(t *testing.T) {
	b := postgresBackend(t, pgURL(t))
	ctx := context.Background()
	for _, c := range []any{
		catalog.RegisterSeller{SellerID: "s1", Name: "Acme"},
		catalog.ListProduct{ProductID: "p1", SellerID: "s1", Title: "Kettle", PriceCents: 100, Stock: 1000},
	} {
		_, err := b.app.Dispatch(ctx, c)
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 200 {
		wg.Go(func() {
			if _, err := b.app.Dispatch(ctx, catalog.ReserveStock{ProductID: "p1", Quantity: 1}); err != nil {
				failed.Add(1)
				t.Error(err)
			}
		})
	}
	wg.Wait()
	v, _ := b.app.Views.Product("p1")
	assert.Equal(t, 800, v.Stock)
	assert.Zero(t, failed.Load())
}

func assertSameViews(t *testing.T, backends []backend) {
	t.Helper()
	ctx := context.Background()
	snaps := make([]map[string]catalog.ProductView, len(backends))
	for i, b := range backends {
		head, err := b.lg.Head(ctx)
		require.NoError(t, err)
		// Head is the newest readable record; another test's transaction
		// can hold it below the newest committed one for a moment.
		if hr, ok := b.lg.(store.HorizonReporter); ok {
			hb, err := hr.HeldBack(ctx)
			require.NoError(t, err)
			if hb != nil {
				head = hb.Head
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		require.NoError(t, b.app.WaitFor(wctx, command.Result{Position: head}))
		cancel()
		snaps[i] = map[string]catalog.ProductView{}
		b.app.Views.Each(func(v catalog.ProductView) bool { snaps[i][v.ID] = v; return true })
	}
	require.Equal(t, len(snaps[0]), len(snaps[1]))
	for id, want := range snaps[0] {
		got, ok := snaps[1][id]
		require.True(t, ok, "product %q missing on %s", id, backends[1].name)
		if !assert.Equal(t, comparable(want), comparable(got), "product %q", id) {
			return
		}
	}
}

// viewForm is a product view with its times in UTC (PostgreSQL returns
// them in the local zone: the same instant, another *time.Location) and its
// recent reviews as a slice.
type viewForm struct {
	View   catalog.ProductView
	Recent []catalog.ReviewSummary
}

func comparable(v catalog.ProductView) viewForm {
	f := viewForm{}
	for r := range v.Recent.All() {
		r.At = r.At.UTC()
		f.Recent = append(f.Recent, r)
	}
	v.Recent = catalog.ProductView{}.Recent
	v.UpdatedAt = v.UpdatedAt.UTC()
	h := make([]catalog.PricePoint, len(v.History))
	for i, p := range v.History {
		h[i] = catalog.PricePoint{At: p.At.UTC(), Cents: p.Cents}
	}
	v.History = h
	f.View = v
	return f
}
