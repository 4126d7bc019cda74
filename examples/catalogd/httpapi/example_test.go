package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
	"github.com/cqrskit/cqrs/store"
)

// The catalog served over HTTP from one process: a write returns its
// position token, a read with the token sees the write, and a broken rule
// comes back as a problem document with a machine-readable code.
func Example() {
	st := store.NewMemory()
	defer st.Close()
	app, err := catalog.Open(context.Background(), st, st, catalog.Config{})
	if err != nil {
		panic(err)
	}
	defer app.Close()
	h, err := httpapi.New(httpapi.Options{Writer: app, Views: httpapi.MemoryViews(app.Views, app.Trending), Progress: app.Runner})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	send := func(method, path, body string, hdr ...string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		return resp
	}
	send("POST", "/v1/sellers", `{"seller_id":"s1","name":"Acme","rating":4.5}`).Body.Close()
	resp := send("POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"Lamp","price_cents":1999,"stock":3}`)
	resp.Body.Close()
	token := resp.Header.Get(httpapi.PositionHeader)
	fmt.Println(resp.Status, resp.Header.Get("Location"))

	resp = send("GET", "/v1/products/p1", "", httpapi.PositionHeader, token)
	var p httpapi.ProductJSON
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	fmt.Println(resp.Header.Get("ETag"), p.Title, p.PriceCents, p.Seller.Name)

	resp = send("POST", "/v1/products/p1/reservations", `{"quantity":9}`)
	var prob httpapi.Problem
	json.NewDecoder(resp.Body).Decode(&prob)
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Content-Type"), prob.Code)
	// Output:
	// 201 Created /v1/products/p1
	// "1" Lamp 1999 Acme
	// 409 Conflict application/problem+json insufficient_stock
}
