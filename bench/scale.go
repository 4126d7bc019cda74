package bench

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// Scale is the shape of a benchmark catalog.
type Scale struct {
	Products int
	Sellers  int
	// Reviews is the number of reviews each product gets while seeding.
	Reviews int
	// History is the number of commands (mostly price changes) applied
	// after the seed, spread over the last 100 days, so that the price
	// history and "price N days ago" mean something.
	History int
}

// DefaultProducts is the catalog size when CQRSKIT_BENCH_PRODUCTS is unset.
const DefaultProducts = 100_000

// ProductsFromEnv returns CQRSKIT_BENCH_PRODUCTS, or DefaultProducts.
func ProductsFromEnv() int {
	if s := os.Getenv("CQRSKIT_BENCH_PRODUCTS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return DefaultProducts
}

// ScaleFor returns the catalog scenario for n products: one seller per 100
// products, 5 reviews per product (shipping options are 1-3, 2 on average),
// and 2 history commands per product.
func ScaleFor(n int) Scale {
	return Scale{Products: n, Sellers: max(n/100, 1), Reviews: 5, History: 2 * n}
}

// Human formats a count as 10K, 100K, 1M.
func Human(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%dK", n/1_000)
	}
	return strconv.Itoa(n)
}

// Clock is the time source shared by the cqrskit store and the baselines.
// While seeding it is set to fake times spread over the past 120 days; once
// the catalog is built it follows the real clock.
type Clock struct {
	fake atomic.Int64 // Unix nanoseconds; 0 means time.Now
}

// Now returns the current time of the clock.
func (c *Clock) Now() time.Time {
	if n := c.fake.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Now()
}

// Set fixes the clock at t.
func (c *Clock) Set(t time.Time) { c.fake.Store(t.UnixNano()) }

// Real makes the clock follow time.Now.
func (c *Clock) Real() { c.fake.Store(0) }

// rng is a small, fast xorshift generator for picking keys in hot loops.
type rng uint64

func newRNG(seed uint64) rng { return rng(seed*0x9e3779b97f4a7c15 | 1) }

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*r = rng(x)
	return x
}

// intn returns a number in [0, n).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }
