package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
)

// joinFields keeps the fields both the view and the JOIN serve (the
// tables have no version, update time, trending badge or previous price),
// without the review times, which two servers stamp by their own clocks.
func joinFields(p httpapi.ProductJSON) httpapi.ProductJSON {
	p.Version, p.Trending, p.PriceDropped, p.PreviousPriceCents = 0, false, false, 0
	p.UpdatedAt = time.Time{}
	for i := range p.RecentReviews {
		p.RecentReviews[i].At = time.Time{} // two processes, two clocks
	}
	return p
}

// TestNaiveJoin: with -naive-join, GET product runs the JOIN on the tables
// loaded after the seed, and the writes that follow reach them: after each
// kind of write its answer is, on every field the tables hold, the view's
// of a server without -naive-join given the same commands.
func TestNaiveJoin(t *testing.T) {
	url := postgresURL(t)
	_, join := startServer(t, Config{Seed: 30, NaiveJoin: url})
	_, ref := startServer(t, Config{Seed: 30})
	writes := []struct{ method, path, body string }{
		{"PUT", "/v1/products/p-3/price", `{"seller_id":"s-0","price_cents":777}`},
		{"PUT", "/v1/products/p-3/stock", `{"seller_id":"s-0","stock":0}`},
		{"POST", "/v1/products/p-3/reviews", `{"review_id":"r-x","author":"ann","rating":2,"text":"meh <b>"}`},
		{"PUT", "/v1/products/p-3/details", `{"seller_id":"s-0","title":"T","description":"D"}`},
		{"PUT", "/v1/products/p-3/shipping", `{"seller_id":"s-0","options":[{"method":"drone","price_cents":5,"days":1}]}`},
		{"PUT", "/v1/sellers/s-0/name", `{"name":"Renamed"}`},
		{"POST", "/v1/products/p-3/restock", `{"seller_id":"s-0","quantity":4}`},
		{"POST", "/v1/products/p-3/reservations", `{"quantity":3}`},
	}
	check := func(when string) {
		t.Helper()
		for _, id := range []string{"p-0", "p-3", "p-29"} {
			got, want := joinFields(join.product(id)), joinFields(ref.product(id))
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Fatalf("%s, %s:\n join %+v\n view %+v", when, id, got, want)
			}
		}
	}
	check("after the seed")
	for _, w := range writes {
		join.write(w.method, w.path, w.body)
		ref.write(w.method, w.path, w.body)
		check("after " + w.method + " " + w.path)
	}
	if code, _, _ := join.call("GET", "/v1/products/"+catalog.ProductID(99), ""); code != 404 {
		t.Fatalf("missing product: %d, want 404", code)
	}
}
