package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
	"github.com/cqrskit/cqrs/store"
)

// request is a catalog command as an HTTP request.
type request struct {
	method, path string
	body         any
	ifMatch      uint64
	badText      bool // a string field is invalid UTF-8: JSON cannot carry it as sent
}

// toHTTP translates a command into its route.
func toHTTP(cmd any) request {
	p := func(id string) string { return "/v1/products/" + id }
	switch c := cmd.(type) {
	case catalog.RegisterSeller:
		return request{"POST", "/v1/sellers", httpapi.RegisterSellerRequest{SellerID: c.SellerID, Name: c.Name, Rating: c.Rating}, 0, false}
	case catalog.RenameSeller:
		return request{"PUT", "/v1/sellers/" + c.SellerID + "/name", httpapi.RenameSellerRequest{Name: c.Name}, 0, false}
	case catalog.RateSeller:
		return request{"PUT", "/v1/sellers/" + c.SellerID + "/rating", httpapi.RateSellerRequest{Rating: c.Rating}, 0, false}
	case catalog.ListProduct:
		return request{"POST", "/v1/products", httpapi.ListProductRequest{ProductID: c.ProductID, SellerID: c.SellerID, Title: c.Title, Description: c.Description, PriceCents: c.PriceCents, Stock: c.Stock}, 0, false}
	case catalog.UpdatePrice:
		return request{"PUT", p(c.ProductID) + "/price", httpapi.UpdatePriceRequest{SellerID: c.SellerID, PriceCents: c.PriceCents}, c.ExpectedVersion, false}
	case catalog.UpdateStock:
		return request{"PUT", p(c.ProductID) + "/stock", httpapi.UpdateStockRequest{SellerID: c.SellerID, Stock: c.Stock}, c.ExpectedVersion, false}
	case catalog.ReserveStock:
		return request{"POST", p(c.ProductID) + "/reservations", httpapi.ReserveStockRequest{Quantity: c.Quantity}, 0, false}
	case catalog.Restock:
		return request{"POST", p(c.ProductID) + "/restock", httpapi.RestockRequest{SellerID: c.SellerID, Quantity: c.Quantity}, 0, false}
	case catalog.UpdateDetails:
		return request{"PUT", p(c.ProductID) + "/details", httpapi.UpdateDetailsRequest{SellerID: c.SellerID, Title: c.Title, Description: c.Description}, c.ExpectedVersion,
			!utf8.ValidString(c.Title) || !utf8.ValidString(c.Description)}
	case catalog.SubmitReview:
		return request{"POST", p(c.ProductID) + "/reviews", httpapi.SubmitReviewRequest{ReviewID: c.ReviewID, Author: c.Author, Rating: c.Rating, Text: c.Text}, 0, false}
	case catalog.SetShipping:
		opts := make([]httpapi.ShippingJSON, len(c.Options))
		for i, o := range c.Options {
			opts[i] = httpapi.ShippingJSON{Method: o.Method, PriceCents: o.PriceCents, Days: o.Days}
		}
		return request{"PUT", p(c.ProductID) + "/shipping", httpapi.SetShippingRequest{SellerID: c.SellerID, Options: opts}, c.ExpectedVersion, false}
	}
	panic(fmt.Sprintf("no route for %T", cmd))
}

// wantStatus is the status the API must give for a direct Dispatch's error.
func wantStatus(err error, created bool) int {
	switch {
	case err == nil && created:
		return 201
	case err == nil:
		return 200
	case errors.Is(err, command.ErrValidation):
		return 422
	case errors.Is(err, store.ErrNotFound):
		return 404
	case errors.Is(err, command.ErrForbidden):
		return 403
	case errors.As(err, new(*command.StaleError)):
		return 412
	case errors.Is(err, store.ErrAlreadyExists), errors.Is(err, command.ErrRejected):
		return 409
	}
	return 500
}

// counterClock returns a store clock that ticks one minute per call, so two
// stores given the same commands stamp the same times.
func counterClock() func() time.Time {
	var n atomic.Int64
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Minute) }
}

// TestHTTPEqualsDispatch sends random command sequences (catalog.Gen, every
// command type, about one in eight invalid or rejected) over HTTP to a
// catalog with async views, and the same commands straight to a reference
// catalog with Dispatch. Every HTTP status is the one the reference's error
// maps to, and in the end every product, read with the last write's
// token, is byte for byte the reference's.
func TestHTTPEqualsDispatch(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			ctx := context.Background()
			now := func() time.Time { return time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC) }
			open := func(async bool) (*catalog.App, http.Handler) {
				st := store.NewMemory(store.WithClock(counterClock()))
				t.Cleanup(func() { st.Close() })
				app, err := catalog.Open(ctx, st, st, catalog.Config{Async: async})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { app.Close() })
				h, err := httpapi.New(httpapi.Options{Writer: app, Views: httpapi.MemoryViews(app.Views, app.Trending), Progress: app.Runner, Now: now})
				if err != nil {
					t.Fatal(err)
				}
				return app, h
			}
			_, api := open(true)
			ref, refAPI := open(false)

			const products = 30
			g := catalog.NewGen(seed, 4, products)
			cmds := g.Seed(2)
			for range 400 {
				cmds = append(cmds, g.Next())
			}
			token := ""
			statuses := map[int]int{}
			for i, cmd := range cmds {
				rq := toHTTP(cmd)
				_, refErr := ref.Dispatch(ctx, cmd)
				body, err := json.Marshal(rq.body)
				if err != nil {
					t.Fatal(err)
				}
				if rq.badText { // send the invalid bytes JSON would have replaced
					body = bytes.Replace(body, []byte(`\ufffd`), []byte("\xff"), 1)
				}
				hdr := []string{}
				if rq.ifMatch != 0 {
					hdr = append(hdr, "If-Match", httpapi.ETag(rq.ifMatch))
				}
				w := do(api, rq.method, rq.path, string(body), hdr...)
				want := wantStatus(refErr, rq.method == "POST" && rq.path != "/v1/products/"+productOf(cmd)+"/reservations" && rq.path != "/v1/products/"+productOf(cmd)+"/restock")
				if rq.badText {
					want = 400 // refused before dispatch; the reference refuses it too
					if refErr == nil {
						t.Fatalf("command %d %T: the reference accepted invalid UTF-8", i, cmd)
					}
				}
				statuses[w.Code]++
				if w.Code != want {
					t.Fatalf("command %d %+v: status %d, want %d (reference error %v); body %s", i, cmd, w.Code, want, refErr, w.Body)
				}
				if tok := w.Header().Get(httpapi.PositionHeader); tok != "" {
					token = tok
				}
			}
			t.Logf("statuses %v", statuses)
			if len(statuses) < 5 {
				t.Errorf("only statuses %v: the sequence does not exercise the error mapping", statuses)
			}
			for i := range products + 3 {
				path := "/v1/products/" + catalog.ProductID(i)
				got := do(api, "GET", path, "", httpapi.PositionHeader, token)
				want := do(refAPI, "GET", path, "")
				if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) || got.Header().Get("ETag") != want.Header().Get("ETag") {
					t.Fatalf("%s:\n http %d %s\n  ref %d %s", path, got.Code, got.Body, want.Code, want.Body)
				}
			}
			for _, path := range []string{"/v1/top-rated?limit=100", "/v1/in-stock?limit=500", "/v1/sellers/s-1/products", "/v1/sellers/s-2"} {
				got, want := do(api, "GET", path, "", httpapi.PositionHeader, token), do(refAPI, "GET", path, "")
				if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
					t.Fatalf("%s:\n http %s\n  ref %s", path, got.Body, want.Body)
				}
			}
		})
	}
}

// productOf returns the product a command is about, or "".
func productOf(cmd any) string {
	switch c := cmd.(type) {
	case catalog.ReserveStock:
		return c.ProductID
	case catalog.Restock:
		return c.ProductID
	}
	return ""
}
