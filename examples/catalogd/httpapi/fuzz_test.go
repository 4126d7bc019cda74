package httpapi_test

import (
	"encoding/json"
	"testing"
)

// FuzzWriteBody sends arbitrary bodies to the write routes: every answer is
// a success or a client error (never a 5xx or a panic), every error is a
// problem document, and a refused request leaves the log where it was.
func FuzzWriteBody(f *testing.F) {
	for _, s := range []string{
		`{"seller_id":"s1","price_cents":5}`, `{"quantity":1}`, `{"quantity":-1}`, `{"seller_id":"s1","title":"x\u0000"}`,
		`{"seller_id":"s1","options":[{"method":"a","price_cents":1,"days":1},{"method":"a"}]}`, `{"review_id":"r","author":"a","rating":5}`,
		`{"quantity":1e400}`, `{"quantity":"1"}`, `[`, `null`, `{}`, "\xff", `{"a":1}`, `{"quantity":1} x`,
	} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(3))
	}
	routes := []struct{ method, path string }{
		{"PUT", "/v1/products/p1/price"}, {"PUT", "/v1/products/p1/details"}, {"PUT", "/v1/products/p1/stock"},
		{"PUT", "/v1/products/p1/shipping"}, {"POST", "/v1/products/p1/reservations"}, {"POST", "/v1/products/p1/restock"},
		{"POST", "/v1/products/p1/reviews"}, {"POST", "/v1/products"}, {"POST", "/v1/sellers"},
		{"PUT", "/v1/sellers/s1/name"}, {"PUT", "/v1/sellers/s1/rating"},
	}
	f.Fuzz(func(t *testing.T, body string, route uint8) {
		fx := newFixture(t, false, nil)
		fx.seed()
		rt := routes[int(route)%len(routes)]
		head := fx.head()
		w := fx.do(rt.method, rt.path, body)
		switch {
		case w.Code == 200 || w.Code == 201:
			var wr struct{ Position string }
			if err := json.Unmarshal(w.Body.Bytes(), &wr); err != nil || wr.Position == "" {
				t.Fatalf("success without a position: %s", w.Body)
			}
		case w.Code >= 400 && w.Code < 500:
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%d with Content-Type %q", w.Code, ct)
			}
			if h := fx.head(); h != head {
				t.Fatalf("refused (%d) but the log moved from %v to %v", w.Code, head, h)
			}
		default:
			t.Fatalf("%s %s %q: status %d %s", rt.method, rt.path, body, w.Code, w.Body)
		}
	})
}
