package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadLoadSchedule: every scheduled request is sent once, to the
// product path, spread over the URLs, and counted by outcome.
func TestReadLoadSchedule(t *testing.T) {
	var hits [2]atomic.Int64
	var bad atomic.Int64
	srv := func(i int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v1/products/p-") {
				bad.Add(1)
			}
			if strings.HasSuffix(r.URL.Path, "-0") { // the hottest Zipf key: some 404s
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write([]byte(`{}`))
		}))
	}
	a, b := srv(0), srv(1)
	defer a.Close()
	defer b.Close()
	r := readLoad([]string{a.URL, b.URL}, 1000, 2000, 4, 300*time.Millisecond, 1.1)
	if r.sent != 600 || int64(len(r.lat)) != r.sent || r.ok+r.notFound != r.sent || r.failed != 0 {
		t.Fatalf("sent %d lat %d ok %d 404 %d failed %d, want 600 sent, all answered", r.sent, len(r.lat), r.ok, r.notFound, r.failed)
	}
	if r.notFound == 0 {
		t.Errorf("no 404 for the hottest key p-0: the Zipf mix is not reaching the server")
	}
	if hits[0].Load() != 300 || hits[1].Load() != 300 || bad.Load() != 0 {
		t.Errorf("hits %d/%d, bad %d: want 300 per URL, all GET product", hits[0].Load(), hits[1].Load(), bad.Load())
	}
	for i := 1; i < len(r.lat); i++ {
		if r.lat[i] < r.lat[i-1] {
			t.Fatal("latencies not sorted")
		}
	}
}

// TestReadLoadNoCoordinatedOmission: a server that stalls for 200 ms
// once, with one worker, must show the stall in the requests queued
// behind it (latency from the due time), not only in the one request
// that hit it; and the schedule must not slow down.
func TestReadLoadNoCoordinatedOmission(t *testing.T) {
	var once sync.Once
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { time.Sleep(200 * time.Millisecond) })
	}))
	defer s.Close()
	r := readLoad([]string{s.URL}, 100, 500, 1, 400*time.Millisecond, 1.1)
	if r.sent != 200 || r.failed != 0 {
		t.Fatalf("sent %d failed %d, want 200 sent, none failed", r.sent, r.failed)
	}
	// 100 requests were due during the stall; the median of those waited
	// ~100 ms, so at least a quarter of all requests took over 50 ms.
	if p := r.pct(0.75); p < 50*time.Millisecond {
		t.Errorf("p75 %v: the stall was not charged to the requests queued behind it", p)
	}
	if r.late < 50 {
		t.Errorf("late %d: requests picked up long after their due time were not counted", r.late)
	}
}

// TestReadLoadReconnects: a server that closes every connection after
// its answer (Connection: close) still gets every request, each on a
// fresh connection, and none counts as failed.
func TestReadLoadReconnects(t *testing.T) {
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte(`{"id":"p"}`))
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	defer s.Close()
	r := readLoad([]string{s.URL}, 100, 500, 2, 100*time.Millisecond, 1.1)
	if r.sent != 50 || r.ok != 50 || r.failed != 0 {
		t.Fatalf("sent %d ok %d failed %d, want 50 answered", r.sent, r.ok, r.failed)
	}
	if conns.Load() != 50 {
		t.Errorf("%d connections for 50 Connection: close answers, want one each", conns.Load())
	}
}
