package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
	"github.com/cqrskit/cqrs/store"
)

// nopWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler rather than a recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkGetProduct is the handler's share of GET /v1/products/{id}
// (routing, view lookup, JSON encoding), without the network; the load
// test (load.sh) measures the whole service.
func BenchmarkGetProduct(b *testing.B) {
	st := store.NewMemory()
	defer st.Close()
	app, err := catalog.Open(context.Background(), st, st, catalog.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close()
	const n = 1000
	g := catalog.NewGen(1, 10, n)
	for _, c := range g.Seed(3) {
		if _, err := app.Dispatch(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
	h, err := httpapi.New(httpapi.Options{Writer: app, Views: httpapi.MemoryViews(app.Views, app.Trending), Progress: app.Runner})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("GET", "/v1/products/p-"+strconv.Itoa(i), nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &nopWriter{h: http.Header{}}
		i := 0
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, reqs[i%n])
			i++
		}
	})
}
