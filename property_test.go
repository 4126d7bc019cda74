package cqrs_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// snapshot is everything the catalog's read models answer, in a comparable
// form.
type snapshot struct {
	Products map[string]catalog.ProductView
	Top      []catalog.Rated
	InStock  []string
	BySeller map[string][]string
}

func snap(v *catalog.Views, sellers int) snapshot {
	s := snapshot{Products: map[string]catalog.ProductView{}, BySeller: map[string][]string{}}
	v.Each(func(p catalog.ProductView) bool { s.Products[p.ID] = p; return true })
	s.Top = v.TopRated(25, nil)
	s.InStock = v.InStock("", 1<<30, nil)
	for i := range sellers {
		s.BySeller[catalog.SellerID(i)] = v.BySeller(catalog.SellerID(i), nil)
	}
	return s
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Random command sequences, applied inline, must give the same read models
// as: an async projector following the same log while it is written, an
// async projector stopped in the middle and restarted from its checkpoint,
// projectors catching up with the finished log in batches and one event at
// a time, and a rebuild from position zero.
func TestPropertyInlineAsyncRestartRebuildAgree(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5}
	n := 3000
	if testing.Short() {
		seeds, n = seeds[:2], 1000
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			ctx := context.Background()
			const sellers, products = 8, 60
			st, app := open(t, catalog.Config{})

			// An async follower on the same log, running while the log is written.
			follower := catalog.NewViews()
			fr := projection.NewRunner(st)
			require.NoError(t, fr.Add(follower, projection.AsAsync()))
			require.NoError(t, fr.Start(ctx))
			defer fr.Close()

			// A follower that is closed half way and restarted from its checkpoint.
			restarted := catalog.NewViews()
			cps := &projection.MemoryCheckpoints{}
			r1 := projection.NewRunner(st, projection.WithCheckpoints(cps), projection.WithBatchSize(7))
			require.NoError(t, r1.Add(restarted, projection.AsAsync()))
			require.NoError(t, r1.Start(ctx))

			gen := catalog.NewGen(seed, sellers, products)
			cmds := gen.Seed(1)
			for range n {
				cmds = append(cmds, gen.Next())
			}
			rejected := 0
			accepted := map[string]int{}
			why := map[error]int{}
			for i, c := range cmds {
				if _, err := app.Dispatch(ctx, c); err != nil {
					rejected++
					for _, s := range []error{command.ErrValidation, store.ErrNotFound, command.ErrForbidden,
						store.ErrAlreadyExists, command.ErrRejected, store.ErrConflict} {
						if errors.Is(err, s) {
							why[s]++
						}
					}
				} else {
					accepted[fmt.Sprintf("%T", c)]++
				}
				if i == len(cmds)/2 {
					require.NoError(t, r1.Close())
				}
			}
			assert.Positive(t, rejected, "the mix includes rejections")
			for _, c := range []any{catalog.RegisterSeller{}, catalog.RenameSeller{}, catalog.RateSeller{},
				catalog.ListProduct{}, catalog.UpdatePrice{}, catalog.UpdateStock{}, catalog.ReserveStock{},
				catalog.Restock{}, catalog.UpdateDetails{}, catalog.SubmitReview{}, catalog.SetShipping{}} {
				assert.Positive(t, accepted[fmt.Sprintf("%T", c)], "the mix exercises %T", c)
			}
			for _, s := range []error{command.ErrValidation, store.ErrNotFound, command.ErrForbidden,
				store.ErrAlreadyExists, command.ErrRejected, store.ErrConflict} {
				assert.Positive(t, why[s], "the mix includes rejections matching %v", s)
			}
			head, _ := st.Head(ctx)
			r2 := projection.NewRunner(st, projection.WithCheckpoints(cps))
			require.NoError(t, r2.Add(restarted, projection.AsAsync()))
			require.NoError(t, r2.Start(ctx))
			defer r2.Close()

			// Catch-up of the finished log: in batches (HandleBatch) of a
			// random size, and one event at a time (projection.Named
			// hides the batch capability).
			batched, perEvent := catalog.NewViews(), catalog.NewViews()
			r3 := projection.NewRunner(st, projection.WithBatchSize(2+int(seed*37)%500))
			require.NoError(t, r3.Add(batched, projection.AsAsync()))
			require.NoError(t, r3.Add(projection.Named("per-event", perEvent), projection.AsAsync()))
			require.NoError(t, r3.Start(ctx))
			defer r3.Close()

			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, fr.WaitFor(wctx, "", head))
			require.NoError(t, r2.WaitFor(wctx, "", head))
			require.NoError(t, r3.WaitFor(wctx, "", head))

			inline := snap(app.Views, sellers)
			require.NotEmpty(t, inline.Products)
			assertSame(t, inline, snap(follower, sellers), "async follower")
			assertSame(t, inline, snap(restarted, sellers), "restarted follower")
			assertSame(t, inline, snap(perEvent, sellers), "caught up one event at a time")
			assertSame(t, inline, snap(batched, sellers), "caught up in batches")

			require.NoError(t, app.Runner.Rebuild(ctx, app.Views.Name()))
			assertSame(t, inline, snap(app.Views, sellers), "rebuilt")
		})
	}
}

func assertSame(t *testing.T, want, got snapshot, what string) {
	t.Helper()
	require.Equal(t, keys(want.Products), keys(got.Products), what)
	for id, w := range want.Products {
		if !assert.Equal(t, w, got.Products[id], "%s: product %s", what, id) {
			return
		}
	}
	assert.Equal(t, want.Top, got.Top, what)
	assert.Equal(t, want.InStock, got.InStock, what)
	assert.Equal(t, want.BySeller, got.BySeller, what)
}
