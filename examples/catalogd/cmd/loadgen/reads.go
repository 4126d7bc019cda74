package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// readResult is what readLoad measured: every request's latency from its
// due time, sorted, and the counts by outcome.
type readResult struct {
	sent, ok, notFound, failed int64
	late                       int64 // requests still queued 1 ms after they were due: the workers could not keep up
	lat                        []time.Duration
	elapsed                    time.Duration
}

func (r *readResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(p*float64(len(r.lat)-1))].Round(10 * time.Microsecond)
}

// readLoad sends GET /v1/products/p-<i> (i Zipf-distributed) at a
// constant rate spread round-robin over urls: an open model, where the
// schedule does not wait for answers. A pacer wakes every 200 µs
// and hands every request that has come due to a pool of workers, each
// on its own keep-alive connection; a request's latency runs from its
// due time, so time spent queued behind busy workers or a stalled server
// counts (no coordinated omission). Workers record into their own slices
// (no shared lock on the hot path); the slices are merged and sorted at
// the end, so the percentiles are exact, not bucketed.
func readLoad(urls []string, products, rate, workers int, d time.Duration, s float64) *readResult {
	ctx, cancel := context.WithTimeout(context.Background(), d+15*time.Second)
	defer cancel()

	type job struct {
		due  time.Time
		host int
		id   uint64
	}
	n := int(int64(rate) * int64(d) / int64(time.Second))
	jobs := make(chan job, n) // never blocks the pacer: a full backlog is measured, not dropped
	parts := make([]readResult, workers)
	var wg sync.WaitGroup
	for w := range workers {
		part := &parts[w]
		part.lat = make([]time.Duration, 0, n/workers+16)
		wg.Go(func() {
			conns := make([]*rawConn, len(urls))
			defer func() {
				for _, c := range conns {
					c.close()
				}
			}()
			for j := range jobs {
				if time.Since(j.due) > time.Millisecond {
					part.late++
				}
				code := get(ctx, &conns[j.host], urls[j.host], j.id)
				part.lat = append(part.lat, time.Since(j.due))
				part.sent++
				switch {
				case code == http.StatusOK:
					part.ok++
				case code == http.StatusNotFound:
					part.notFound++
				default:
					part.failed++
				}
			}
		})
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	zipf := rand.NewZipf(rng, s, 1, uint64(products-1))
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	tick := time.NewTicker(200 * time.Microsecond)
	for k := 0; k < n; {
		<-tick.C
		now := time.Now()
		for ; k < n; k++ {
			due := start.Add(time.Duration(k) * interval)
			if due.After(now) {
				break
			}
			jobs <- job{due: due, host: k % len(urls), id: zipf.Uint64()}
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()

	res := &readResult{elapsed: time.Since(start)}
	for i := range parts {
		p := &parts[i]
		res.sent += p.sent
		res.ok += p.ok
		res.notFound += p.notFound
		res.failed += p.failed
		res.late += p.late
		res.lat = append(res.lat, p.lat...)
	}
	slices.Sort(res.lat)
	return res
}

func (r *readResult) String() string {
	return fmt.Sprintf("sent %d ok %d not_found %d failed %d late_1ms %d rate %.0f/s p50 %v p90 %v p99 %v p99.9 %v max %v",
		r.sent, r.ok, r.notFound, r.failed, r.late, float64(r.sent)/r.elapsed.Seconds(),
		r.pct(0.50), r.pct(0.90), r.pct(0.99), r.pct(0.999), r.pct(1))
}
