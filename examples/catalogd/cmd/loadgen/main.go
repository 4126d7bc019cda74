// Command loadgen sends catalog commands to a catalogd at a constant rate
// and reports their latency, optionally with product reads at their own
// constant rate (-read-rate); load.sh runs it alone, with reads, and next
// to wrk for the saturation throughput.
//
//	loadgen -url http://127.0.0.1:8080 -products 100000 -rate 500 -duration 20s
//
// Products are picked with a Zipf distribution (a few hot products take
// most commands, as on a real shop); the commands are price and stock
// updates, reviews, reservations and restocks of products seeded by
// catalogd -seed (product i is p-i, owned by seller s-(i mod sellers)).
// Latency is measured from when a command was due, not when it was sent,
// so a stalled server shows up in the percentiles instead of slowing the
// schedule (no coordinated omission).
//
// It prints one line: sent, ok, rejected (4xx: an expected business
// rejection such as insufficient stock), failed (5xx or transport), and
// p50/p99/max latency.
//
// With -read-rate it also reads, at the same time and from the same
// process: GET /v1/products/{id} at a constant rate (an open model, not
// wrk's flat-out closed loop), Zipf keys, spread over the -read-urls
// (default -url), on -workers keep-alive connections, latency again from
// each request's due time. That is how a latency target paired with a
// throughput ("12,000 reads/s with p99 < 5 ms") is measured: at that
// rate, not at saturation, where the percentiles only measure the queue.
//
//	loadgen -url http://127.0.0.1:8080 -rate 500 -read-rate 12000 -duration 20s
//
// -rate 0 reads only. The read line adds p90/p99.9, 404s (a product not
// seeded) and late_1ms: requests a worker picked up more than 1 ms after
// they were due, the load generator's own backlog (if it is large, add
// -workers or the client is the bottleneck, not the server).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "catalogd (writer or all) base URL")
	products := flag.Int("products", 100000, "products seeded (catalogd -seed)")
	rate := flag.Int("rate", 500, "commands per second")
	duration := flag.Duration("duration", 20*time.Second, "how long to send")
	zipfS := flag.Float64("zipf", 1.1, "Zipf exponent s (> 1) of the product choice")
	label := flag.String("label", "writes", "label printed with the result")
	readRate := flag.Int("read-rate", 0, "product GETs per second at the same time (0: no reads)")
	readURLs := flag.String("read-urls", "", "comma-separated base URLs the reads are spread over (default -url)")
	workers := flag.Int("workers", 128, "concurrent readers (keep-alive connections) serving the read schedule")
	flag.Parse()
	if *rate < 0 || *readRate < 0 || *rate+*readRate == 0 || *products < 1 || *zipfS <= 1 || *workers < 1 {
		fmt.Fprintln(os.Stderr, "loadgen: -rate or -read-rate must be positive (neither negative), -products and -workers positive, -zipf above 1")
		os.Exit(2)
	}
	urls := []string{*url}
	if *readURLs != "" {
		urls = strings.Split(*readURLs, ",")
	}
	var (
		wg sync.WaitGroup
		w  *result
		rd *readResult
	)
	if *readRate > 0 {
		wg.Go(func() { rd = readLoad(urls, *products, *readRate, *workers, *duration, *zipfS) })
	}
	if *rate > 0 {
		wg.Go(func() { w = run(*url, *products, *rate, *duration, *zipfS) })
	}
	wg.Wait()
	failed := false
	if rd != nil {
		fmt.Printf("reads at %d/s on %s: %v\n", *readRate, strings.Join(urls, ","), rd)
		failed = rd.failed > 0
	}
	if w != nil {
		fmt.Printf("%s: sent %d ok %d rejected %d failed %d rate %.0f/s p50 %v p99 %v max %v\n",
			*label, w.sent, w.ok, w.rejected, w.failed, float64(w.sent)/duration.Seconds(), w.pct(0.50), w.pct(0.99), w.pct(1))
		failed = failed || w.failed > 0
	}
	if failed {
		os.Exit(1)
	}
}

type result struct {
	sent, ok, rejected, failed int64
	lat                        []time.Duration
}

func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(p * float64(len(r.lat)-1))
	return r.lat[i].Round(10 * time.Microsecond)
}

func run(base string, products, rate int, d time.Duration, s float64) *result {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	zipf := rand.NewZipf(rng, s, 1, uint64(products-1))
	sellers := max(1, products/100)
	runID := time.Now().UnixNano()

	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
	)
	var seq atomic.Int64
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	n := int(d / interval)
	ctx, cancel := context.WithTimeout(context.Background(), d+15*time.Second)
	defer cancel()
	for k := range n {
		due := start.Add(time.Duration(k) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		i := int(zipf.Uint64())
		method, path, body := command(rng, i, sellers, runID, seq.Add(1))
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := cl.Do(req)
			lat := time.Since(due)
			code := 0
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			defer mu.Unlock()
			res.sent++
			switch {
			case code >= 200 && code < 300:
				res.ok++
			case code >= 400 && code < 500:
				res.rejected++
			default:
				res.failed++
			}
			res.lat = append(res.lat, lat)
		})
	}
	wg.Wait()
	slices.Sort(res.lat)
	return &res
}

// command returns a random valid command on product i.
func command(rng *rand.Rand, i, sellers int, runID, seq int64) (method, path, body string) {
	p := fmt.Sprintf("/v1/products/p-%d", i)
	owner := fmt.Sprintf("s-%d", i%sellers)
	switch k := rng.IntN(100); {
	case k < 35:
		return "PUT", p + "/price", fmt.Sprintf(`{"seller_id":%q,"price_cents":%d}`, owner, 100+rng.IntN(100000))
	case k < 60:
		return "POST", p + "/reviews", fmt.Sprintf(`{"review_id":"lr-%d-%d","author":"load","rating":%d,"text":"load test"}`, runID, seq, 1+rng.IntN(5))
	case k < 75:
		return "POST", p + "/reservations", `{"quantity":1}`
	case k < 90:
		return "POST", p + "/restock", fmt.Sprintf(`{"seller_id":%q,"quantity":%d}`, owner, 1+rng.IntN(5))
	default:
		return "PUT", p + "/stock", fmt.Sprintf(`{"seller_id":%q,"stock":%d}`, owner, rng.IntN(50))
	}
}
