package readmodel_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/readmodel"
)

// These tests run readers concurrently with writers and check what the
// readers observe. Run them with -race. Readers report what they saw as
// errors (require must not be called off the test's goroutine); runReaders
// asserts on them.

// runReaders starts n readers that call read until the writers are done
// or read returns an error, and returns a function that waits for them and
// reports the errors.
func runReaders(t *testing.T, n int, read func(r int) error) (stop func()) {
	t.Helper()
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var reads atomic.Int64
	for r := range n {
		wg.Go(func() {
			for !done.Load() {
				if err := read(r); err != nil {
					errs <- err
					return
				}
				reads.Add(1)
			}
		})
	}
	return func() {
		t.Helper()
		done.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			assert.NoError(t, err, "a reader")
		}
		assert.Positive(t, reads.Load(), "reads done")
	}
}

// counter is a view whose fields must always agree, so a torn or mixed
// value is detectable.
type counter struct {
	Key   string
	N     int
	Check string // strconv.Itoa(N)
}

func TestMapReadersDuringWrites(t *testing.T) {
	const (
		stable  = 64   // keys that always exist and are incremented
		incrs   = 2000 // increments per writer
		writers = 2
		churn   = 20000 // insertions and deletions of other keys, forcing table rebuilds
	)
	m := readmodel.NewMap[string, counter]()
	key := func(i int) string { return "stable-" + strconv.Itoa(i) }
	for i := range stable {
		m.Put(context.Background(), key(i), counter{Key: key(i), Check: "0"})
	}

	stop := runReaders(t, 2, func(r int) error {
		last := make([]int, stable) // per reader: values never go backwards
		for i := range stable {
			c, ok := m.Load(key(i))
			switch {
			case !ok:
				return fmt.Errorf("existing key %s missing", key(i))
			case c.Key != key(i) || c.Check != strconv.Itoa(c.N):
				return fmt.Errorf("torn value for %s: %+v", key(i), c)
			case c.N < last[i]:
				return fmt.Errorf("%s went back from %d to %d", key(i), last[i], c.N)
			}
			last[i] = c.N
		}
		return nil
	})

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range incrs {
				m.Update(key(rng.IntN(stable)), func(old counter, ok bool) (counter, bool) {
					old.N++
					old.Check = strconv.Itoa(old.N)
					return old, true
				})
			}
		})
	}
	wg.Go(func() {
		for i := range churn {
			k := "churn-" + strconv.Itoa(i)
			m.Put(context.Background(), k, counter{Key: k, Check: "0"})
			if i >= 1000 {
				m.Delete(context.Background(), "churn-"+strconv.Itoa(i-1000))
			}
		}
	})
	wg.Wait()
	stop()

	total := 0
	for i := range stable {
		c, _ := m.Load(key(i))
		total += c.N
	}
	assert.Equal(t, writers*incrs, total, "no increment lost")
	assert.Equal(t, stable+1000, m.Len())
}

// checkRanked verifies that entries are strictly best first and hold no
// key twice.
func checkRanked(entries []readmodel.Ranked[int]) error {
	seen := make(map[int]bool, len(entries))
	for i, e := range entries {
		if seen[e.Key] {
			return fmt.Errorf("key %d appears twice", e.Key)
		}
		seen[e.Key] = true
		if i > 0 {
			p := entries[i-1]
			if p.Score < e.Score || (p.Score == e.Score && p.Key >= e.Key) {
				return fmt.Errorf("out of order at %d: %+v before %+v", i, p, e)
			}
		}
	}
	return nil
}

func TestRankingConcurrentMoves(t *testing.T) {
	const (
		stable = 500  // keys that are always ranked and keep moving
		moves  = 5000 // per writer
	)
	r := readmodel.NewRanking[int]()
	for k := range stable {
		r.Set(k, float64(k%50))
	}

	stop := runReaders(t, 2, func(int) error {
		// Top of everything: a snapshot, so every stable key exactly once.
		all := r.Top(stable*2, nil)
		if err := checkRanked(all); err != nil {
			return err
		}
		stableSeen := 0
		for _, e := range all {
			if e.Key < stable {
				stableSeen++
			}
		}
		if stableSeen != stable {
			return fmt.Errorf("Top saw %d of the %d stable keys", stableSeen, stable)
		}
		var buf [10]readmodel.Ranked[int]
		if err := checkRanked(r.Top(10, buf[:0])); err != nil {
			return err
		}
		if _, ok := r.Score(stable / 2); !ok {
			return fmt.Errorf("Score of a stable key missing")
		}
		return nil
	})

	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for range moves {
				// Small integer scores make many ties, exercising the key order.
				r.Set(rng.IntN(stable), float64(rng.IntN(60)))
			}
		})
	}
	wg.Go(func() { // keys coming and going
		for i := range moves {
			r.Set(stable+i%100, float64(i%70))
			if i%3 == 0 {
				r.Remove(stable + (i+50)%100)
			}
		}
	})
	wg.Wait()
	stop()

	require.NoError(t, checkRanked(r.Top(r.Len(), nil)))
}

// TestRankingConcurrentTopOfLargeTree runs readers of the top snapshot
// and of Score against writers that move, add and remove keys of a ranking
// big enough for a three-level tree, through single Sets and SetMany
// batches, with scores that keep entering and leaving the top. A reader
// must get a sorted snapshot without duplicates, holding every key that
// never leaves the top, and a snapshot it holds must never change.
func TestRankingConcurrentTopOfLargeTree(t *testing.T) {
	const (
		keys   = 20_000
		pinned = 20   // keys 0..19 stay at scores above every other
		rounds = 3000 // per writer
	)
	r := readmodel.NewRanking[int]()
	batch := make([]readmodel.Ranked[int], keys)
	for k := range batch {
		batch[k] = readmodel.Ranked[int]{Key: k, Score: float64(k % 21)}
	}
	for k := range pinned {
		batch[k].Score = 100 + float64(k%3)
	}
	r.SetMany(batch)

	stop := runReaders(t, 2, func(int) error {
		top := r.Top(readmodel.RankingTopCache, nil)
		held := slices.Clone(top)
		if err := checkRanked(top); err != nil {
			return err
		}
		if len(top) != readmodel.RankingTopCache {
			return fmt.Errorf("Top(%d) returned %d", readmodel.RankingTopCache, len(top))
		}
		for i := range pinned {
			if top[i].Key >= pinned {
				return fmt.Errorf("entry %d of the top is %+v, not a pinned key", i, top[i])
			}
		}
		if s, ok := r.Score(pinned / 2); !ok || s < 100 {
			return fmt.Errorf("Score of a pinned key = %v, %v", s, ok)
		}
		var buf [10]readmodel.Ranked[int]
		if err := checkRanked(r.Top(10, buf[:0])); err != nil {
			return err
		}
		if !slices.Equal(held, top) {
			return fmt.Errorf("a snapshot changed while held")
		}
		return nil
	})

	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range rounds {
				k := pinned + rng.IntN(keys-pinned)
				switch {
				case i%7 == 0:
					r.Remove(k)
				case i%5 == 0:
					b := make([]readmodel.Ranked[int], 40)
					for j := range b {
						b[j] = readmodel.Ranked[int]{Key: pinned + rng.IntN(keys-pinned), Score: float64(rng.IntN(30))}
					}
					r.SetMany(b)
				default:
					r.Set(k, float64(rng.IntN(30))) // 21..29 enter the top
				}
			}
		})
	}
	wg.Go(func() { // the pinned keys move among themselves
		rng := rand.New(rand.NewPCG(5, 9))
		for range rounds {
			r.Set(rng.IntN(pinned), 100+float64(rng.IntN(3)))
		}
	})
	wg.Wait()
	stop()

	all := slices.Collect(r.All())
	require.NoError(t, checkRanked(all))
	require.Len(t, all, r.Len())
}

func TestSortedSetConcurrentPaging(t *testing.T) {
	const n = 2000 // even keys are always present; odd keys come and go
	s := readmodel.NewSortedSet[int]()
	for k := 0; k < n; k += 2 {
		s.Add(k)
	}
	stop := runReaders(t, 2, func(r int) error {
		limit := 7 + r*31
		page := s.Page(limit, nil)
		evens := 0
		prev := -1
		for len(page) > 0 {
			for _, k := range page {
				if k <= prev {
					return fmt.Errorf("page went from %d to %d", prev, k)
				}
				prev = k
				if k%2 == 0 {
					evens++
				}
			}
			page = s.PageAfter(page[len(page)-1], limit, page[:0])
		}
		if evens != n/2 {
			return fmt.Errorf("paging saw %d of %d stable keys", evens, n/2)
		}
		if !s.Contains(n / 2) {
			return fmt.Errorf("stable key missing")
		}
		return nil
	})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for range 5000 {
				k := 2*rng.IntN(n/2) + 1
				if rng.IntN(2) == 0 {
					s.Add(k)
				} else {
					s.Remove(k)
				}
			}
		})
	}
	wg.Wait()
	stop()
}

func TestIndexConcurrent(t *testing.T) {
	const groups, perGroup = 8, 200 // even keys are always present
	x := readmodel.NewIndex[string, int]()
	group := func(g int) string { return "seller-" + strconv.Itoa(g) }
	for g := range groups {
		for k := 0; k < perGroup; k += 2 {
			x.Add(group(g), k)
		}
	}
	stop := runReaders(t, 2, func(r int) error {
		var buf []int
		for g := range groups {
			buf = x.Keys(group(g), buf[:0])
			evens := 0
			for i, k := range buf {
				if i > 0 && buf[i-1] >= k {
					return fmt.Errorf("group %d out of order: %d then %d", g, buf[i-1], k)
				}
				if k%2 == 0 {
					evens++
				}
			}
			if evens != perGroup/2 {
				return fmt.Errorf("group %d: saw %d of %d stable keys", g, evens, perGroup/2)
			}
		}
		// Groups yields each stable group once while temporary ones come and go.
		seen := map[string]int{}
		for g := range x.Groups() {
			seen[g]++
		}
		for g := range groups {
			if n := seen[group(g)]; n != 1 {
				return fmt.Errorf("Groups yielded stable group %d %d times", g, n)
			}
		}
		for g, n := range seen {
			if n != 1 {
				return fmt.Errorf("Groups yielded %s %d times", g, n)
			}
		}
		return nil
	})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 4))
			for i := range 5000 {
				g := group(rng.IntN(groups))
				k := 2*rng.IntN(perGroup/2) + 1
				if rng.IntN(2) == 0 {
					x.Add(g, k)
				} else {
					x.Remove(g, k)
				}
				// A group that appears and disappears.
				tmp := "tmp-" + strconv.Itoa(w)
				if i%2 == 0 {
					x.Add(tmp, i)
				} else {
					x.Remove(tmp, i-1)
				}
			}
		})
	}
	wg.Wait()
	stop()
	assert.Equal(t, groups, x.GroupCount(), "temporary groups must vanish")
}
