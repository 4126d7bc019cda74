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

	"github.com/cqrskit/cqrs/readmodel"
)

// Benchmarks compare the package's types with hand-written baselines in
// the same run: a Go map under one sync.RWMutex (the usual cache) and
// sync.Map. Keys are read in a random order, and every lookup reads a
// field of the view, so that the cost of reaching the value is counted.

const benchKeys = 100_000

// benchFixture holds keys and a random visiting order, built once.
var benchFixture = sync.OnceValue(func() (f struct {
	keys  []string
	order []int
}) {
	f.keys = make([]string, benchKeys)
	for i := range f.keys {
		f.keys[i] = "product-" + strconv.Itoa(i)
	}
	f.order = rand.New(rand.NewPCG(1, 1)).Perm(benchKeys)
	return f
})

func BenchmarkMapLoad(b *testing.B) {
	f := benchFixture()
	// 100K keys is the target size; 1K keys fit in cache and show the
	// cost of the code rather than of memory.
	for _, n := range []int{benchKeys, 1000} {
		keys := f.keys[:n]
		order := f.order
		if n < benchKeys {
			order = rand.New(rand.NewPCG(2, 2)).Perm(n)
		}
		m := readmodel.NewMap[string, view]()
		var mu sync.RWMutex
		plain := make(map[string]*view, n)
		var sm sync.Map
		// Fill each map in its own loop, so that each one's values are
		// laid out in memory as if it were the only map.
		for i, k := range keys {
			m.Put(context.Background(), k, view{Title: k, Price: i})
		}
		for i, k := range keys {
			plain[k] = &view{Title: k, Price: i}
		}
		for i, k := range keys {
			sm.Store(k, &view{Title: k, Price: i})
		}

		loads := []struct {
			name string
			load func(key string) int
		}{
			{"Map", func(key string) int {
				v, _ := m.Load(key)
				return v.Price
			}},
			{"baseline=RWMutexMap", func(key string) int {
				mu.RLock()
				v := plain[key]
				mu.RUnlock()
				return v.Price
			}},
			{"baseline=syncMap", func(key string) int {
				v, _ := sm.Load(key)
				return v.(*view).Price
			}},
		}
		for _, l := range loads {
			b.Run(fmt.Sprintf("%s/n=%d/single", l.name, n), func(b *testing.B) {
				b.ReportAllocs()
				sum := 0
				for i := 0; b.Loop(); i++ {
					sum += l.load(keys[order[i%n]])
				}
				sink.Add(int64(sum))
			})
			b.Run(fmt.Sprintf("%s/n=%d/parallel", l.name, n), func(b *testing.B) {
				b.ReportAllocs()
				var seed atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					i := int(seed.Add(1)) * 7919 // goroutines start at different keys
					sum := 0
					for ; pb.Next(); i++ {
						sum += l.load(keys[order[i%n]])
					}
					sink.Add(int64(sum))
				})
			})
		}

		// Readers while one goroutine keeps replacing existing keys. With
		// Map the readers never wait for the writer; with the baseline they
		// queue behind its write lock.
		writers := []struct {
			name  string
			load  func(key string) int
			store func(key string, i int)
		}{
			{"Map", loads[0].load, func(k string, i int) {
				m.Put(context.Background(), k, view{Title: k, Price: i})
			}},
			{"baseline=RWMutexMap", loads[1].load, func(k string, i int) {
				v := &view{Title: k, Price: i}
				mu.Lock()
				plain[k] = v
				mu.Unlock()
			}},
		}
		for _, w := range writers {
			b.Run(fmt.Sprintf("%s/n=%d/parallel-with-writer", w.name, n), func(b *testing.B) {
				b.ReportAllocs()
				stop := make(chan struct{})
				var writes atomic.Int64
				done := make(chan struct{})
				go func() {
					defer close(done)
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						w.store(keys[order[(i*31)%n]], i)
						writes.Add(1)
					}
				}()
				var seed atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					i := int(seed.Add(1)) * 7919
					sum := 0
					for ; pb.Next(); i++ {
						sum += w.load(keys[order[i%n]])
					}
					sink.Add(int64(sum))
				})
				close(stop)
				<-done
				b.ReportMetric(float64(writes.Load())/b.Elapsed().Seconds(), "writes/s")
			})
		}
	}
}

// sink keeps benchmark results alive.
var sink atomic.Int64

func BenchmarkMapPut(b *testing.B) {
	f := benchFixture()
	m := readmodel.NewMap[string, view]()
	var mu sync.RWMutex
	plain := make(map[string]*view, benchKeys)
	for i, k := range f.keys {
		v := view{Title: k, Price: i}
		m.Put(context.Background(), k, v)
		plain[k] = &v
	}
	b.Run("Map/existing", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := f.keys[f.order[i%benchKeys]]
			m.Put(context.Background(), k, view{Title: k, Price: i})
		}
	})
	b.Run("baseline=RWMutexMap/existing", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := f.keys[f.order[i%benchKeys]]
			v := &view{Title: k, Price: i}
			mu.Lock()
			plain[k] = v
			mu.Unlock()
		}
	})
	b.Run("Map/existing-parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(1)) * 7919
			for ; pb.Next(); i++ {
				k := f.keys[f.order[i%benchKeys]]
				m.Put(context.Background(), k, view{Title: k, Price: i})
			}
		})
	})
	b.Run("Map/Update", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			m.Update(f.keys[f.order[i%benchKeys]], func(v view, ok bool) (view, bool) {
				v.Price++
				return v, ok
			})
		}
	})
	b.Run("Map/insert-delete", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := f.keys[i%benchKeys]
			m.Delete(context.Background(), k)
			m.Put(context.Background(), k, view{Title: k})
		}
	})
}

// rankings caches rankings of 10K, 100K and 1M keys with scores like
// ratings (many ties), built once.
var rankings sync.Map // int -> *readmodel.Ranking[int]

func ranking(n int) *readmodel.Ranking[int] {
	if r, ok := rankings.Load(n); ok {
		return r.(*readmodel.Ranking[int])
	}
	r := readmodel.NewRanking[int]()
	rng := rand.New(rand.NewPCG(uint64(n), 5))
	for k := range n {
		r.Set(k, float64(rng.IntN(401))/100) // 0.00 .. 4.00
	}
	rankings.Store(n, r)
	return r
}

var rankingSizes = []int{10_000, 100_000, 1_000_000}

func BenchmarkRankingTop10(b *testing.B) {
	for _, n := range rankingSizes {
		r := ranking(n)
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]readmodel.Ranked[int], 0, 10)
			for b.Loop() {
				buf = r.Top(10, buf[:0])
			}
		})
		b.Run(fmt.Sprint("n=", n, "/parallel"), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]readmodel.Ranked[int], 0, 10)
				for pb.Next() {
					buf = r.Top(10, buf[:0])
				}
			})
		})
	}
	// The naive alternative: sort every score per query.
	b.Run("baseline=sort/n=10000", func(b *testing.B) {
		b.ReportAllocs()
		all := slices.Collect(ranking(10_000).All())
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		work := make([]readmodel.Ranked[int], len(all))
		for b.Loop() {
			copy(work, all)
			slices.SortFunc(work, func(a, b readmodel.Ranked[int]) int {
				if a.Score != b.Score {
					if a.Score > b.Score {
						return -1
					}
					return 1
				}
				return a.Key - b.Key
			})
		}
	})
}

func BenchmarkRankingSet(b *testing.B) {
	for _, n := range rankingSizes {
		r := ranking(n)
		b.Run(fmt.Sprint("n=", n, "/move"), func(b *testing.B) {
			b.ReportAllocs()
			rng := rand.New(rand.NewPCG(3, 4))
			for b.Loop() {
				r.Set(rng.IntN(n), float64(rng.IntN(401))/100)
			}
		})
	}
	// The catalog's top-rated: product IDs as keys and mean ratings of a
	// few reviews as scores (21 values, so most entries tie on score and
	// the keys decide).
	const n = 100_000
	ids := make([]string, n)
	r := readmodel.NewRanking[string]()
	rng := rand.New(rand.NewPCG(6, 7))
	for i := range ids {
		ids[i] = fmt.Sprint("p-", i)
		r.Set(ids[i], float64(5+rng.IntN(21))/5)
	}
	b.Run(fmt.Sprint("n=", n, "/strings/move"), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Set(ids[rng.IntN(n)], float64(5+rng.IntN(21))/5)
		}
	})
}

func BenchmarkSortedSet(b *testing.B) {
	f := benchFixture()
	s := readmodel.NewSortedSet[string]()
	for _, k := range f.keys {
		s.Add(k)
	}
	b.Run("Page20/n=100000", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]string, 0, 20)
		for i := 0; b.Loop(); i++ {
			buf = s.PageAfter(f.keys[f.order[i%benchKeys]], 20, buf[:0])
		}
	})
	b.Run("Page20/n=100000/parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]string, 0, 20)
			i := int(seed.Add(1)) * 7919
			for ; pb.Next(); i++ {
				buf = s.PageAfter(f.keys[f.order[i%benchKeys]], 20, buf[:0])
			}
		})
	})
	b.Run("Contains/n=100000", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			s.Contains(f.keys[f.order[i%benchKeys]])
		}
	})
	b.Run("RemoveAdd/n=100000", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := f.keys[f.order[i%benchKeys]]
			s.Remove(k)
			s.Add(k)
		}
	})
}
