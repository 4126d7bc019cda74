package catalogredis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/readmodel/redisstore/catalogredis"
	"github.com/cqrskit/cqrs/store"
	"github.com/redis/go-redis/v9"
)

func client(t testing.TB) *redis.Client {
	t.Helper()
	addr := os.Getenv("CQRSKIT_REDIS_ADDR")
	if addr == "" {
		t.Skip("CQRSKIT_REDIS_ADDR is not set: no Redis server to test against")
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// prefix returns a random key prefix whose keys are deleted at cleanup.
func prefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	p := "cqrskit-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, p+":*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Unlink(ctx, iter.Val())
		}
	})
	return p
}

// equalJSON fails t unless a and b encode the same: the Redis views went
// through JSON, so that is the equality that matters (times lose their
// monotonic reading, nothing else).
func equalJSON(t *testing.T, what string, a, b any) {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("%s differs:\nredis     %s\nin-memory %s", what, ja, jb)
	}
}

// compare checks every query of the Redis views against the in-memory
// ones.
func compare(t *testing.T, rv *catalogredis.Views, mv *catalog.Views, gen *catalog.Gen) {
	t.Helper()
	ctx := context.Background()
	n := 0
	mv.Each(func(want catalog.ProductView) bool {
		n++
		got, ok, err := rv.Product(ctx, want.ID)
		if err != nil || !ok {
			t.Fatalf("Product(%s): %v, %v", want.ID, ok, err)
		}
		equalJSON(t, "product "+want.ID, got, want)
		return true
	})
	if c, err := rv.ProductCount(ctx); err != nil || c != n {
		t.Fatalf("ProductCount = %d, %v; want %d", c, err, n)
	}
	for i := range gen.Sellers {
		id := catalog.SellerID(i)
		want, wok := mv.Seller(id)
		got, ok, err := rv.Seller(ctx, id)
		if err != nil || ok != wok {
			t.Fatalf("Seller(%s): %v, %v; want found %v", id, ok, err, wok)
		}
		equalJSON(t, "seller "+id, got, want)
		ids, err := rv.BySeller(ctx, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := mv.BySeller(id, nil); !slices.Equal(ids, want) {
			t.Fatalf("BySeller(%s) = %v, want %v", id, ids, want)
		}
	}
	for _, k := range []int{1, 10, 1000} {
		got, err := rv.TopRated(ctx, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := mv.TopRated(k, nil); !slices.Equal(got, want) {
			t.Fatalf("TopRated(%d) = %v, want %v", k, got, want)
		}
	}
	var got, page []string
	var err error
	for page, err = rv.InStock(ctx, "", 9, nil); err == nil && len(page) > 0; page, err = rv.InStock(ctx, page[len(page)-1], 9, nil) {
		got = append(got, page...)
	}
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for page := mv.InStock("", 9, nil); len(page) > 0; page = mv.InStock(page[len(page)-1], 9, nil) {
		want = append(want, page...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("InStock pages = %v, want %v", got, want)
	}
}

// TestCatalogOnRedisEqualsInMemory: random catalog commands (every kind,
// rejections included) go to the in-memory catalog; the Redis views,
// projected from the same log, answer every query as the in-memory views
// do; and so do they after a rebuild into a new generation.
func TestCatalogOnRedisEqualsInMemory(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	for seed := uint64(1); seed <= 2; seed++ {
		clk := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		st := store.NewMemory(store.WithClock(func() time.Time {
			clk = clk.Add(7 * time.Hour) // price history crosses its 90-day window
			return clk
		}))
		app, err := catalog.Open(ctx, st, st, catalog.Config{})
		if err != nil {
			t.Fatal(err)
		}
		gen := catalog.NewGen(seed, 4, 40)
		cmds := gen.Seed(2)
		for range 1000 {
			cmds = append(cmds, gen.Next())
		}
		rv, err := catalogredis.New(c, prefix(t, c))
		if err != nil {
			t.Fatal(err)
		}
		r := projection.NewRunner(st, projection.WithBatchSize(64))
		if err := r.Add(rv.Projector(), projection.AsAsync(), projection.WithVersion(catalog.ViewsVersion)); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var head event.Position
		for i, cmd := range cmds {
			if res, err := app.Dispatch(ctx, cmd); err == nil {
				head = res.Position
			}
			if i == len(cmds)/2 { // compare once mid-way, too
				waitAndCompare(t, r, head, rv, app.Views, gen)
			}
		}
		waitAndCompare(t, r, head, rv, app.Views, gen)
		if err := r.Rebuild(ctx, catalogredis.Name); err != nil {
			t.Fatal(err)
		}
		compare(t, rv, app.Views, gen)
		if g, err := rv.Namespace().Generation(ctx); err != nil || g != 2 {
			t.Errorf("generation after the rebuild %d, %v; want 2", g, err)
		}
		r.Close()
		rv.Projector().Close()
		app.Close()
		st.Close()
	}
}

func waitAndCompare(t *testing.T, r *projection.Runner, head event.Position, rv *catalogredis.Views, mv *catalog.Views, gen *catalog.Gen) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, catalogredis.Name, head); err != nil {
		s, _ := r.StatusOf(context.Background(), catalogredis.Name)
		t.Fatalf("WaitFor: %v; status %+v", err, s)
	}
	compare(t, rv, mv, gen)
}
