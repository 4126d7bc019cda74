package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// fixture is the handler over a real in-memory catalog.
type fixture struct {
	t   *testing.T
	st  *store.Memory
	app *catalog.App
	h   http.Handler
	log *bytes.Buffer
}

func newFixture(t *testing.T, async bool, tweak func(*httpapi.Options)) *fixture {
	t.Helper()
	st := store.NewMemory()
	t.Cleanup(func() { st.Close() })
	app, err := catalog.Open(context.Background(), st, st, catalog.Config{Async: async})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	f := &fixture{t: t, st: st, app: app, log: &bytes.Buffer{}}
	o := httpapi.Options{
		Writer: app, Views: httpapi.MemoryViews(app.Views, app.Trending), Progress: app.Runner,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: f.log}, nil)),
	}
	if tweak != nil {
		tweak(&o)
	}
	f.h, err = httpapi.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// do sends a request; hdr is name, value pairs.
func do(h http.Handler, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func (f *fixture) do(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	return do(f.h, method, path, body, hdr...)
}

// ok sends a request that must succeed with status.
func (f *fixture) ok(status int, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	w := f.do(method, path, body, hdr...)
	if w.Code != status {
		f.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, w.Code, status, w.Body)
	}
	return w
}

// problem checks that w is a problem document with status and type.
func problem(t *testing.T, w *httptest.ResponseRecorder, status int, typ string) httpapi.Problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p httpapi.Problem
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	if p.Status != status || p.Type != typ || p.Title == "" {
		t.Fatalf("problem %+v, want status %d type %s and a title", p, status, typ)
	}
	return p
}

func (f *fixture) product(id string, hdr ...string) (httpapi.ProductJSON, *httptest.ResponseRecorder) {
	f.t.Helper()
	w := f.ok(http.StatusOK, "GET", "/v1/products/"+id, "", hdr...)
	var p httpapi.ProductJSON
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		f.t.Fatal(err)
	}
	return p, w
}

func (f *fixture) head() event.Position {
	h, err := f.st.Head(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

// seed registers seller s1 and lists product p1 (price 1000, stock 5).
func (f *fixture) seed() {
	f.t.Helper()
	f.ok(201, "POST", "/v1/sellers", `{"seller_id":"s1","name":"Acme","rating":4.5}`)
	f.ok(201, "POST", "/v1/sellers", `{"seller_id":"s2","name":"Other","rating":3}`)
	f.ok(201, "POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"Lamp","description":"Bright.","price_cents":1000,"stock":5}`)
}

func TestEveryRoute(t *testing.T) {
	f := newFixture(t, false, nil)
	w := f.ok(201, "POST", "/v1/sellers", `{"seller_id":"s1","name":"Acme","rating":4.5}`)
	if w.Header().Get("Location") != "/v1/sellers/s1" {
		t.Errorf("Location %q", w.Header().Get("Location"))
	}
	w = f.ok(201, "POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"Lamp","description":"Bright.","price_cents":1000,"stock":5}`)
	if w.Header().Get("Location") != "/v1/products/p1" {
		t.Errorf("Location %q", w.Header().Get("Location"))
	}
	var wr httpapi.WriteResult
	if err := json.Unmarshal(w.Body.Bytes(), &wr); err != nil || wr.Position == 0 || w.Header().Get(httpapi.PositionHeader) != wr.Position.String() {
		t.Fatalf("write result %s (%v), header %q", w.Body, err, w.Header().Get(httpapi.PositionHeader))
	}
	p, w := f.product("p1")
	if p.Title != "Lamp" || p.PriceCents != 1000 || p.Stock != 5 || !p.InStock || p.Seller.Name != "Acme" || p.Version != 1 || w.Header().Get("ETag") != `"1"` {
		t.Fatalf("product %+v, ETag %s", p, w.Header().Get("ETag"))
	}
	if p.Price30DaysAgoCents != nil { // listed just now: no price 30 days ago
		t.Errorf("price 30 days ago = %d", *p.Price30DaysAgoCents)
	}

	f.ok(200, "PUT", "/v1/products/p1/price", `{"seller_id":"s1","price_cents":800}`)
	f.ok(200, "PUT", "/v1/products/p1/details", `{"seller_id":"s1","title":"Lamp 2","description":"Brighter."}`)
	f.ok(200, "PUT", "/v1/products/p1/stock", `{"seller_id":"s1","stock":3}`)
	f.ok(200, "PUT", "/v1/products/p1/shipping", `{"seller_id":"s1","options":[{"method":"express","price_cents":500,"days":1}]}`)
	f.ok(200, "POST", "/v1/products/p1/reservations", `{"quantity":2}`)
	f.ok(200, "POST", "/v1/products/p1/restock", `{"seller_id":"s1","quantity":4}`)
	for i, r := range []int{5, 4, 5} {
		w := f.ok(201, "POST", "/v1/products/p1/reviews", fmt.Sprintf(`{"review_id":"r%d","author":"ann","rating":%d,"text":"ok"}`, i, r))
		if w.Header().Get("Location") != "/v1/products/p1" {
			t.Errorf("review Location %q", w.Header().Get("Location"))
		}
	}
	f.ok(200, "PUT", "/v1/sellers/s1/name", `{"name":"Acme Ltd"}`)
	f.ok(200, "PUT", "/v1/sellers/s1/rating", `{"rating":4.9}`)

	p, w = f.product("p1")
	want := httpapi.ProductJSON{ID: "p1", Title: "Lamp 2", Description: "Brighter.", PriceCents: 800, Stock: 5, InStock: true,
		AverageRating: 4.7, ReviewCount: 3, PriceDropped: true, PreviousPriceCents: 1000, Trending: true, Version: 10,
		Seller: httpapi.SellerJSON{ID: "s1", Name: "Acme Ltd", Rating: 4.9}}
	if p.ID != want.ID || p.Title != want.Title || p.Description != want.Description || p.PriceCents != want.PriceCents ||
		p.Stock != want.Stock || p.InStock != want.InStock || p.AverageRating != want.AverageRating || p.ReviewCount != want.ReviewCount ||
		p.PriceDropped != want.PriceDropped || p.PreviousPriceCents != want.PreviousPriceCents || p.Trending != want.Trending ||
		p.Version != want.Version || p.Seller != want.Seller {
		t.Fatalf("product\n got %+v\nwant %+v", p, want)
	}
	if len(p.RecentReviews) != 3 || p.RecentReviews[0].ReviewID != "r2" || len(p.Shipping) != 1 || p.Shipping[0] != (httpapi.ShippingJSON{Method: "express", PriceCents: 500, Days: 1}) {
		t.Fatalf("reviews %+v shipping %+v", p.RecentReviews, p.Shipping)
	}
	if w.Header().Get("ETag") != `"10"` {
		t.Fatalf("ETag %q", w.Header().Get("ETag"))
	}
	// If-None-Match with the current ETag: 304 and no body.
	w = f.ok(304, "GET", "/v1/products/p1", "", "If-None-Match", `"10"`)
	if w.Body.Len() != 0 {
		t.Errorf("304 with body %q", w.Body)
	}
	f.ok(200, "GET", "/v1/products/p1", "", "If-None-Match", `"9"`)

	var top struct{ Products []httpapi.RatedJSON }
	json.Unmarshal(f.ok(200, "GET", "/v1/top-rated?limit=5", "").Body.Bytes(), &top)
	if len(top.Products) != 1 || top.Products[0].ID != "p1" {
		t.Fatalf("top rated %+v", top)
	}
	var s httpapi.SellerJSON
	json.Unmarshal(f.ok(200, "GET", "/v1/sellers/s1", "").Body.Bytes(), &s)
	if s != (httpapi.SellerJSON{ID: "s1", Name: "Acme Ltd", Rating: 4.9}) {
		t.Fatalf("seller %+v", s)
	}

	// In-stock paging and products by seller over a few more products.
	for i := 2; i <= 5; i++ {
		f.ok(201, "POST", "/v1/products", fmt.Sprintf(`{"product_id":"p%d","seller_id":"s1","title":"T","price_cents":100,"stock":%d}`, i, i%2))
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		var pg httpapi.PageJSON
		json.Unmarshal(f.ok(200, "GET", "/v1/in-stock?limit=2&after="+after, "").Body.Bytes(), &pg)
		got = append(got, pg.Products...)
		if pg.Next == "" {
			break
		}
		after = pg.Next
	}
	if strings.Join(got, ",") != "p1,p3,p5" {
		t.Fatalf("in stock %v", got)
	}
	var bs httpapi.PageJSON
	json.Unmarshal(f.ok(200, "GET", "/v1/sellers/s1/products", "").Body.Bytes(), &bs)
	if strings.Join(bs.Products, ",") != "p1,p2,p3,p4,p5" {
		t.Fatalf("by seller %v", bs.Products)
	}

	f.ok(200, "GET", "/healthz", "")
	f.ok(200, "GET", "/readyz", "")
	var st struct {
		Writer, Reader bool
		Projections    []httpapi.StatusJSON
	}
	json.Unmarshal(f.ok(200, "GET", "/v1/status", "").Body.Bytes(), &st)
	if !st.Writer || !st.Reader || len(st.Projections) != 2 || st.Projections[0].Name != "catalog.views" || st.Projections[0].Checkpoint != f.head() {
		t.Fatalf("status %+v (head %v)", st, f.head())
	}
}

// TestBadRequestsWriteNothing sends every kind of bad input; each gets its
// status and problem type, and the log does not move.
func TestBadRequestsWriteNothing(t *testing.T) {
	f := newFixture(t, false, func(o *httpapi.Options) { o.MaxBodyBytes = 1 << 10 })
	f.seed()
	head := f.head()
	huge := `{"seller_id":"s1","title":"` + strings.Repeat("x", 2000) + `","description":""}`
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		typ                      string
		fields                   []string // expected 422 fields, in order
		code                     string
	}{
		{"invalid fields", "POST", "/v1/products", `{"product_id":"p9","seller_id":"s1","title":" ","price_cents":-5,"stock":-1}`, nil, 422, httpapi.TypeValidation, []string{"title", "price_cents", "stock"}, ""},
		{"invalid shipping", "PUT", "/v1/products/p1/shipping", `{"seller_id":"s1","options":[{"method":"","price_cents":-1,"days":0}]}`, nil, 422, httpapi.TypeValidation, []string{"options[0].method", "options[0].price_cents"}, ""},
		{"control character", "PUT", "/v1/products/p1/details", `{"seller_id":"s1","title":"a\u0000b"}`, nil, 422, httpapi.TypeValidation, []string{"title"}, ""},
		{"review rating", "POST", "/v1/products/p1/reviews", `{"review_id":"r1","author":"a","rating":6}`, nil, 422, httpapi.TypeValidation, []string{"rating"}, ""},
		{"negative reservation", "POST", "/v1/products/p1/reservations", `{"quantity":-3}`, nil, 422, httpapi.TypeValidation, []string{"quantity"}, ""},
		{"missing product", "PUT", "/v1/products/nope/price", `{"seller_id":"s1","price_cents":5}`, nil, 404, httpapi.TypeNotFound, nil, ""},
		{"missing seller", "PUT", "/v1/sellers/nope/name", `{"name":"x"}`, nil, 404, httpapi.TypeNotFound, nil, ""},
		{"not the owner", "PUT", "/v1/products/p1/price", `{"seller_id":"s2","price_cents":5}`, nil, 403, httpapi.TypeForbidden, nil, ""},
		{"already listed", "POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"Lamp","price_cents":1000,"stock":5}`, nil, 409, httpapi.TypeAlreadyExists, nil, ""},
		{"insufficient stock", "POST", "/v1/products/p1/reservations", `{"quantity":6}`, nil, 409, httpapi.TypeRejected, nil, catalog.CodeInsufficientStock},
		{"stale If-Match", "PUT", "/v1/products/p1/price", `{"seller_id":"s1","price_cents":5}`, []string{"If-Match", `"7"`}, 412, httpapi.TypePreconditionFail, nil, ""},
		{"weak If-Match", "PUT", "/v1/products/p1/price", `{"seller_id":"s1","price_cents":5}`, []string{"If-Match", `W/"1"`}, 412, httpapi.TypePreconditionFail, nil, ""},
		{"garbled If-Match", "PUT", "/v1/products/p1/price", `{"seller_id":"s1","price_cents":5}`, []string{"If-Match", `1`}, 400, httpapi.TypeBadRequest, nil, ""},
		{"If-Match where unsupported", "POST", "/v1/products/p1/reservations", `{"quantity":1}`, []string{"If-Match", `"1"`}, 400, httpapi.TypeBadRequest, nil, ""},
		{"malformed JSON", "POST", "/v1/products/p1/reservations", `{"quantity":`, nil, 400, httpapi.TypeBadRequest, nil, ""},
		{"syntax error", "POST", "/v1/products/p1/reservations", `{"quantity" 1}`, nil, 400, httpapi.TypeBadRequest, nil, ""},
		{"wrong type", "POST", "/v1/products/p1/reservations", `{"quantity":"1"}`, nil, 400, httpapi.TypeBadRequest, nil, ""},
		{"fraction for an integer", "POST", "/v1/products/p1/reservations", `{"quantity":1.5}`, nil, 400, httpapi.TypeBadRequest, nil, ""},
		{"not an object", "POST", "/v1/products/p1/reservations", `[1]`, nil, 400, httpapi.TypeBadRequest, nil, ""},
		{"unknown field", "POST", "/v1/products/p1/reservations", `{"quantity":1,"discount":50}`, nil, 400, httpapi.TypeBadRequest, nil, ""},
		{"trailing data", "POST", "/v1/products/p1/reservations", `{"quantity":1}{"quantity":1}`, nil, 400, httpapi.TypeBadRequest, nil, ""},
		{"empty body", "POST", "/v1/products/p1/reservations", ``, nil, 400, httpapi.TypeBadRequest, nil, ""},
		{"invalid UTF-8", "PUT", "/v1/products/p1/details", "{\"seller_id\":\"s1\",\"title\":\"bad \xff\"}", nil, 400, httpapi.TypeBadRequest, nil, ""},
		{"huge body", "PUT", "/v1/products/p1/details", huge, nil, 413, httpapi.TypeTooLarge, nil, ""},
		{"not JSON", "POST", "/v1/products/p1/reservations", `quantity=1`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, httpapi.TypeUnsupportedMedia, nil, ""},
		{"unknown route", "POST", "/v1/orders", `{}`, nil, 404, httpapi.TypeNotFound, nil, ""},
		{"wrong method", "DELETE", "/v1/products/p1", ``, nil, 405, httpapi.TypeMethodNotAllowed, nil, ""},
		{"bad limit", "GET", "/v1/top-rated?limit=0", ``, nil, 400, httpapi.TypeBadRequest, []string{"limit"}, ""},
		{"limit too large", "GET", "/v1/in-stock?limit=100000", ``, nil, 400, httpapi.TypeBadRequest, []string{"limit"}, ""},
		{"bad token", "GET", "/v1/products/p1", ``, []string{httpapi.PositionHeader, "soon"}, 400, httpapi.TypeBadRequest, nil, ""},
		{"unknown product", "GET", "/v1/products/nope", ``, nil, 404, httpapi.TypeNotFound, nil, ""},
		{"unknown seller", "GET", "/v1/sellers/nope/products", ``, nil, 404, httpapi.TypeNotFound, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := f.do(c.method, c.path, c.body, c.hdr...)
			p := problem(t, w, c.status, c.typ)
			var fields []string
			for _, e := range p.Errors {
				if e.Message == "" {
					t.Errorf("field %s without a message", e.Field)
				}
				fields = append(fields, e.Field)
			}
			if strings.Join(fields, ",") != strings.Join(c.fields, ",") {
				t.Errorf("fields %v, want %v", fields, c.fields)
			}
			if p.Code != c.code {
				t.Errorf("code %q, want %q", p.Code, c.code)
			}
			if c.status == 405 && w.Header().Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			if strings.Contains(w.Body.String(), "store:") || strings.Contains(w.Body.String(), "command:") {
				t.Errorf("internal error text in %s", w.Body)
			}
			if h := f.head(); h != head {
				t.Fatalf("log moved from %v to %v", head, h)
			}
		})
	}
	// A correct If-Match applies.
	f.ok(200, "PUT", "/v1/products/p1/price", `{"seller_id":"s1","price_cents":5}`, "If-Match", `"1"`)
	f.ok(200, "PUT", "/v1/products/p1/stock", `{"seller_id":"s1","stock":5}`, "If-Match", `*`)
	problem(t, f.do("PUT", "/v1/products/p1/stock", `{"seller_id":"s1","stock":4}`, "If-Match", `"1"`), 412, httpapi.TypePreconditionFail)
}

// fakeWriter returns a fixed error.
type fakeWriter struct{ err error }

func (f fakeWriter) Dispatch(context.Context, any) (command.Result, error) {
	return command.Result{}, f.err
}

const secret = "password=hunter2 at 10.0.0.7"

func TestErrorMappingHidesInternals(t *testing.T) {
	cause := errors.New(secret)
	cases := []struct {
		name   string
		err    error
		status int
		typ    string
		check  func(t *testing.T, p httpapi.Problem, w *httptest.ResponseRecorder)
	}{
		{"plain error", cause, 500, httpapi.TypeInternal, func(t *testing.T, p httpapi.Problem, _ *httptest.ResponseRecorder) {
			if !strings.HasPrefix(p.Instance, "urn:uuid:") {
				t.Errorf("instance %q", p.Instance)
			}
		}},
		{"unavailable", fmt.Errorf("%w: %w", store.ErrUnavailable, cause), 503, httpapi.TypeUnavailable, nil},
		{"held back", &store.HeldBackError{}, 503, httpapi.TypeUnavailable, nil},
		{"closed", store.ErrClosed, 503, httpapi.TypeUnavailable, nil},
		{"store invalid", &store.InvalidError{What: "ProductID", Reason: "too long for the key", Err: cause}, 422, httpapi.TypeValidation, func(t *testing.T, p httpapi.Problem, _ *httptest.ResponseRecorder) {
			if len(p.Errors) != 1 || p.Errors[0].Field != "product_id" {
				t.Errorf("errors %+v", p.Errors)
			}
		}},
		{"conflict", &store.ConflictError{Table: "products", Key: "p1", Expected: 1, Actual: 2}, 409, httpapi.TypeConflict, nil},
		{"stale", &command.StaleError{Stream: "product/p1", Expected: 1, Actual: 3}, 412, httpapi.TypePreconditionFail, nil},
		{"not reached", &projection.NotReachedError{Projector: "v", Want: 9, Err: context.DeadlineExceeded, Cause: cause}, 503, httpapi.TypeNotReached, nil},
		{"bare sentinel forbidden", command.ErrForbidden, 403, httpapi.TypeForbidden, nil},
		{"bare sentinel validation", command.ErrValidation, 422, httpapi.TypeValidation, nil},
		{"wrapped not found", fmt.Errorf("lookup: %w", store.ErrNotFound), 404, httpapi.TypeNotFound, nil},
		{"cancelled", context.Canceled, 503, httpapi.TypeUnavailable, nil},
		{"no handler", &command.NoHandlerError{Type: "x"}, 500, httpapi.TypeInternal, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			h, err := httpapi.New(httpapi.Options{Writer: fakeWriter{c.err}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			w := do(h, "POST", "/v1/products/p1/reservations", `{"quantity":1}`)
			body := w.Body.String()
			p := problem(t, w, c.status, c.typ)
			if strings.Contains(body, "hunter2") || strings.Contains(body, "10.0.0.7") {
				t.Errorf("internal text reached the client: %s", body)
			}
			if c.status == 503 && w.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if c.status == 500 && !strings.Contains(logs.String(), p.Instance) {
				t.Errorf("500 instance %s not in the log %q", p.Instance, logs.String())
			}
			if c.check != nil {
				c.check(t, p, w)
			}
		})
	}
}

// afterCommitWriter fails every command after its commit, as a dispatch whose
// inline projection stops does.
type afterCommitWriter struct{}

func (afterCommitWriter) Dispatch(context.Context, any) (command.Result, error) {
	return command.Result{}, &command.AfterCommitError{Position: 77, Err: errors.New(secret)}
}

// TestCommittedWriteIsSuccess: a command that committed but whose inline
// views failed is reported as done, with its token, never as a failure the
// client would retry.
func TestCommittedWriteIsSuccess(t *testing.T) {
	var logs bytes.Buffer
	h, err := httpapi.New(httpapi.Options{Writer: afterCommitWriter{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w := do(h, "POST", "/v1/products/p1/reviews", `{"review_id":"r1","author":"a","rating":5}`)
	if w.Code != 201 || w.Header().Get(httpapi.PositionHeader) != "77" || strings.Contains(w.Body.String(), "hunter2") {
		t.Fatalf("%d %q %s", w.Code, w.Header().Get(httpapi.PositionHeader), w.Body)
	}
	if !strings.Contains(logs.String(), "hunter2") {
		t.Errorf("the cause is not logged: %q", logs.String())
	}
}

func TestReadYourWrites(t *testing.T) {
	f := newFixture(t, true, func(o *httpapi.Options) { o.ConsistencyTimeout = 100 * time.Millisecond })
	f.seed()
	// Async views: every read with the token of the write before it sees
	// that write, over many rounds.
	for i := range 50 {
		w := f.ok(200, "PUT", "/v1/products/p1/price", fmt.Sprintf(`{"seller_id":"s1","price_cents":%d}`, 100+i))
		p, _ := f.product("p1", httpapi.PositionHeader, w.Header().Get(httpapi.PositionHeader))
		if p.PriceCents != int64(100+i) {
			t.Fatalf("round %d: read with the token shows price %d", i, p.PriceCents)
		}
	}
	// A token the views never reach: 503 after the bounded wait.
	start := time.Now()
	w := f.do("GET", "/v1/products/p1", "", httpapi.PositionHeader, "99999999")
	problem(t, w, 503, httpapi.TypeNotReached)
	if w.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 5*time.Second {
		t.Errorf("waited %v, want about the 100ms consistency timeout", d)
	}
	for _, path := range []string{"/v1/top-rated", "/v1/in-stock", "/v1/sellers/s1", "/v1/sellers/s1/products"} {
		problem(t, f.do("GET", path, "", httpapi.PositionHeader, "99999999"), 503, httpapi.TypeNotReached)
	}
}

func TestMisdirected(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	bus := command.New(st)
	catalog.NewDomain(st).Register(bus)
	writer, err := httpapi.New(httpapi.Options{Writer: bus})
	if err != nil {
		t.Fatal(err)
	}
	do(writer, "POST", "/v1/sellers", `{"seller_id":"s1","name":"A"}`)
	if w := do(writer, "POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"T","price_cents":1}`); w.Code != 201 {
		t.Fatalf("writer: %d %s", w.Code, w.Body)
	}
	for _, path := range []string{"/v1/products/p1", "/v1/top-rated", "/v1/in-stock", "/v1/sellers/s1", "/v1/sellers/s1/products"} {
		problem(t, do(writer, "GET", path, ""), 421, httpapi.TypeMisdirected)
	}
	if w := do(writer, "GET", "/readyz", ""); w.Code != 200 {
		t.Fatalf("writer readyz %d", w.Code)
	}

	views := catalog.NewViews()
	r := projection.NewRunner(st)
	r.Add(views, projection.AsAsync())
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reader, err := httpapi.New(httpapi.Options{Views: httpapi.MemoryViews(views, nil), Progress: r})
	if err != nil {
		t.Fatal(err)
	}
	head, _ := st.Head(context.Background())
	if w := do(reader, "GET", "/v1/products/p1", "", httpapi.PositionHeader, head.String()); w.Code != 200 {
		t.Fatalf("reader: %d %s", w.Code, w.Body)
	}
	problem(t, do(reader, "POST", "/v1/products/p1/reservations", `{"quantity":1}`), 421, httpapi.TypeMisdirected)

	if _, err := httpapi.New(httpapi.Options{}); !errors.Is(err, httpapi.ErrNoSides) {
		t.Errorf("New without sides: %v", err)
	}
	if _, err := httpapi.New(httpapi.Options{Views: httpapi.MemoryViews(views, nil)}); !errors.Is(err, httpapi.ErrNoProgress) {
		t.Errorf("New without progress: %v", err)
	}
}

// fakeProgress reports fixed statuses.
type fakeProgress struct {
	sts []projection.Status
	err error
}

func (f fakeProgress) WaitFor(context.Context, string, event.Position) error { return nil }
func (f fakeProgress) Status(context.Context) ([]projection.Status, error)   { return f.sts, f.err }

func TestReadyzAndStatus(t *testing.T) {
	views := httpapi.MemoryViews(catalog.NewViews(), nil)
	failing := &projection.StoppedError{Projector: "catalog.views", Err: errors.New(secret)}
	cases := []struct {
		name     string
		p        fakeProgress
		ready    func(context.Context) error
		status   int
		notReady []string
	}{
		{"running", fakeProgress{sts: []projection.Status{{Name: "a", State: projection.Running}}}, nil, 200, nil},
		{"slightly behind", fakeProgress{sts: []projection.Status{{Name: "a", State: projection.CatchingUp, TimeBehind: time.Second}}}, nil, 200, nil},
		{"far behind", fakeProgress{sts: []projection.Status{{Name: "a", State: projection.Running}, {Name: "b", State: projection.CatchingUp, TimeBehind: time.Minute}}}, nil, 503, []string{"b (catching up)"}},
		{"stopped", fakeProgress{sts: []projection.Status{{Name: "catalog.views", State: projection.Stopped, Err: failing}}}, nil, 503, []string{"catalog.views (stopped)"}},
		{"status fails", fakeProgress{err: errors.New(secret)}, nil, 503, nil},
		{"store down", fakeProgress{}, func(context.Context) error { return errors.New(secret) }, 503, nil},
		{"standby", fakeProgress{sts: []projection.Status{{Name: "a", State: projection.Standby, Leased: true, Owner: "other"}}}, nil, 200, nil},
		{"idle", fakeProgress{sts: []projection.Status{{Name: "a", State: projection.Idle}}}, nil, 503, []string{"a (idle)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := httpapi.New(httpapi.Options{Views: views, Progress: c.p, Ready: c.ready, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			w := do(h, "GET", "/readyz", "")
			if strings.Contains(w.Body.String(), "hunter2") {
				t.Fatalf("secret in %s", w.Body)
			}
			if c.status == 200 {
				if w.Code != 200 {
					t.Fatalf("readyz %d %s", w.Code, w.Body)
				}
				return
			}
			p := problem(t, w, 503, httpapi.TypeNotReady)
			if strings.Join(p.NotReady, ";") != strings.Join(c.notReady, ";") || w.Header().Get("Retry-After") == "" {
				t.Fatalf("not ready %v, Retry-After %q", p.NotReady, w.Header().Get("Retry-After"))
			}
		})
	}
	h, _ := httpapi.New(httpapi.Options{Views: views, Progress: fakeProgress{sts: []projection.Status{{Name: "catalog.views", State: projection.Stopped, Checkpoint: 5, Head: 9, Behind: 4, Err: failing}}}, Logger: slog.New(slog.DiscardHandler)})
	w := do(h, "GET", "/v1/status", "")
	if w.Code != 200 || strings.Contains(w.Body.String(), "hunter2") {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	var st struct{ Projections []httpapi.StatusJSON }
	json.Unmarshal(w.Body.Bytes(), &st)
	if len(st.Projections) != 1 || !st.Projections[0].Failing || st.Projections[0].State != "stopped" || st.Projections[0].Behind != 4 || st.Projections[0].Checkpoint != 5 {
		t.Fatalf("status %+v", st)
	}
}

// TestConcurrentReservations sends many reservations of one unit to one
// product at once: exactly the stock succeeds, the rest are rejected with
// insufficient_stock, and stock ends at zero.
func TestConcurrentReservations(t *testing.T) {
	f := newFixture(t, false, nil)
	f.seed()
	const stock, clients = 100, 1000
	f.ok(200, "PUT", "/v1/products/p1/stock", fmt.Sprintf(`{"seller_id":"s1","stock":%d}`, stock))
	var wg sync.WaitGroup
	codes := make([]int, clients)
	for i := range clients {
		wg.Go(func() {
			w := f.do("POST", "/v1/products/p1/reservations", `{"quantity":1}`)
			codes[i] = w.Code
			if w.Code == 409 && !strings.Contains(w.Body.String(), catalog.CodeInsufficientStock) {
				t.Errorf("409 without the code: %s", w.Body)
			}
		})
	}
	wg.Wait()
	n := map[int]int{}
	for _, c := range codes {
		n[c]++
	}
	if n[200] != stock || n[409] != clients-stock {
		t.Fatalf("status counts %v, want %d x 200 and %d x 409", n, stock, clients-stock)
	}
	if p, _ := f.product("p1"); p.Stock != 0 || p.InStock {
		t.Fatalf("stock %d in stock %v", p.Stock, p.InStock)
	}
}

// TestCancelledRequestIsNotAStoreFailure: when the client has gone, the
// store's report of the cancelled call is not logged as an outage.
func TestCancelledRequestIsNotAStoreFailure(t *testing.T) {
	var logs bytes.Buffer
	h, err := httpapi.New(httpapi.Options{
		Writer: fakeWriter{fmt.Errorf("pgstore: get row: %w: context canceled", store.ErrUnavailable)},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequestWithContext(ctx, "POST", "/v1/products/p1/reservations", strings.NewReader(`{"quantity":1}`))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	problem(t, w, 503, httpapi.TypeUnavailable)
	if logs.Len() != 0 {
		t.Fatalf("logged at info or above: %s", logs.String())
	}
	// The same error on a live request is an outage, and logged.
	problem(t, do(h, "POST", "/v1/products/p1/reservations", `{"quantity":1}`), 503, httpapi.TypeUnavailable)
	if !strings.Contains(logs.String(), "store unavailable") {
		t.Fatalf("outage not logged: %q", logs.String())
	}
}

// TestProgressOnly: a process that only projects or relays serves its
// status and readiness; commands and queries answer 421. The lease of a
// leased projector is in /v1/status.
func TestProgressOnly(t *testing.T) {
	h, err := httpapi.New(httpapi.Options{Progress: fakeProgress{sts: []projection.Status{
		{Name: "catalog.views", Mode: projection.Async, State: projection.Standby, Checkpoint: 7, Head: 9, Leased: true, Owner: "proj-a", Epoch: 3},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if w := do(h, "GET", "/readyz", ""); w.Code != 200 {
		t.Fatalf("readyz of a standby: %d %s", w.Code, w.Body)
	}
	w := do(h, "GET", "/v1/status", "")
	var st struct {
		Writer, Reader bool
		Projections    []httpapi.StatusJSON
	}
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || w.Code != 200 {
		t.Fatalf("status %d %s: %v", w.Code, w.Body, err)
	}
	want := httpapi.StatusJSON{Name: "catalog.views", Mode: "async", State: "standby", Checkpoint: 7, Head: 9, Leased: true, Owner: "proj-a", Epoch: 3}
	if st.Writer || st.Reader || len(st.Projections) != 1 || st.Projections[0] != want {
		t.Fatalf("status %s", w.Body)
	}
	problem(t, do(h, "GET", "/v1/products/p1", ""), 421, httpapi.TypeMisdirected)
	problem(t, do(h, "POST", "/v1/sellers", `{"seller_id":"s1","name":"A","rating":1}`), 421, httpapi.TypeMisdirected)
}
