package readmodel_test

import (
	"context"
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/readmodel/readmodeltest"
	"github.com/cqrskit/cqrs/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMapConformance(t *testing.T) {
	readmodeltest.Run(t, func(*testing.T) readmodel.Store[string, readmodeltest.Doc] {
		return readmodel.NewMap[string, readmodeltest.Doc]()
	})
}

func TestMapLoadGet(t *testing.T) {
	m := readmodel.NewMap[string, int]()
	v, ok := m.Load("a")
	assert.False(t, ok, "Load on an empty map")
	assert.Zero(t, v)
	_, err := m.Get(context.Background(), "a")
	assert.ErrorIs(t, err, store.ErrNotFound, "Get on an empty map")
	require.NoError(t, m.Put(context.Background(), "a", 1))
	v, ok = m.Load("a")
	assert.True(t, ok)
	assert.Equal(t, 1, v)
	v, err = m.Get(context.Background(), "a")
	require.NoError(t, err)
	assert.Equal(t, 1, v)
}

func TestMapUpdate(t *testing.T) {
	m := readmodel.NewMap[string, int]()
	incr := func(old int, ok bool) (int, bool) { return old + 1, true }

	var sawOK []bool
	record := func(old int, ok bool) (int, bool) {
		sawOK = append(sawOK, ok)
		return incr(old, ok)
	}
	m.Update("a", record) // inserts
	m.Update("a", record) // modifies
	assert.Equal(t, []bool{false, true}, sawOK, "fn saw whether the key was present")
	v, _ := m.Load("a")
	assert.Equal(t, 2, v, "after two increments")
	assert.Equal(t, 1, m.Len())

	m.Update("a", func(int, bool) (int, bool) { return 0, false }) // deletes
	_, ok := m.Load("a")
	assert.False(t, ok, "the key survived a delete")
	assert.Zero(t, m.Len())
	m.Update("b", func(int, bool) (int, bool) { return 7, false }) // absent stays absent
	_, ok = m.Load("b")
	assert.False(t, ok, "returning false inserted a key")
	assert.Zero(t, m.Len())
}

func TestMapUpdatePanicLeavesMapUsable(t *testing.T) {
	m := readmodel.NewMap[string, int]()
	m.Update("a", func(int, bool) (int, bool) { return 1, true })
	func() {
		defer func() { _ = recover() }()
		m.Update("a", func(int, bool) (int, bool) { panic("boom") })
	}()
	// The shard must have been unlocked and the value untouched.
	m.Update("a", func(old int, _ bool) (int, bool) { return old + 1, true })
	v, _ := m.Load("a")
	assert.Equal(t, 2, v, "value after a panicking update")
}

func TestMapRangeLenClear(t *testing.T) {
	m := readmodel.NewMap[int, string]()
	want := map[int]string{}
	for i := range 1000 {
		m.Put(context.Background(), i, strconv.Itoa(i))
		want[i] = strconv.Itoa(i)
	}
	require.Equal(t, 1000, m.Len())
	got := map[int]string{}
	m.Range(func(k int, v string) bool {
		require.NotContains(t, got, k, "Range visited a key twice")
		got[k] = v
		return true
	})
	assert.Equal(t, want, got, "Range")
	assert.Equal(t, want, maps.Collect(m.All()), "All")

	n := 0
	m.Range(func(int, string) bool { n++; return n < 10 })
	assert.Equal(t, 10, n, "Range stops when fn returns false")

	// fn may write to the map: Range holds no lock.
	m.Range(func(k int, _ string) bool {
		if k%2 == 0 {
			m.Delete(context.Background(), k)
		}
		return true
	})
	assert.Equal(t, 500, m.Len(), "after deleting the even keys in Range")

	m.Clear()
	assert.Zero(t, m.Len(), "after Clear")
	m.Range(func(k int, _ string) bool {
		assert.Failf(t, "Range after Clear visited a key", "key %d", k)
		return false
	})
	m.Put(context.Background(), 1, "one") // usable after Clear
	v, ok := m.Load(1)
	assert.True(t, ok, "Load after Clear and Put")
	assert.Equal(t, "one", v)
}

// TestMapAgainstReference drives the map through growth, churn (which
// leaves tombstones) and shrinking with random operations, comparing with
// a Go map after every step.
func TestMapAgainstReference(t *testing.T) {
	type key struct { // a composite key exercises maphash.Comparable
		s string
		n int
	}
	rng := rand.New(rand.NewPCG(7, 11))
	m := readmodel.NewMap[key, int]()
	ref := map[key]int{}
	k := func() key { i := rng.IntN(5000); return key{strconv.Itoa(i % 7), i} }
	for step := range 200_000 {
		kk := k()
		switch r := rng.IntN(100); {
		case step > 150_000 && r < 80: // finally, mostly deletes: tables shrink
			m.Delete(context.Background(), kk)
			delete(ref, kk)
		case r < 45:
			m.Put(context.Background(), kk, step)
			ref[kk] = step
		case r < 65:
			m.Update(kk, func(old int, ok bool) (int, bool) {
				if want, wok := ref[kk]; ok != wok || old != want { // hot loop: compare first, then fail
					require.Failf(t, "Update saw the wrong entry", "step %d: Update(%v) saw %v, %v; want %v, %v", step, kk, old, ok, want, wok)
				}
				return old + 1, old%3 != 0
			})
			if old := ref[kk]; old%3 != 0 {
				ref[kk] = old + 1
			} else {
				delete(ref, kk)
			}
		default:
			m.Delete(context.Background(), kk)
			delete(ref, kk)
		}
		kk = k()
		v, ok := m.Load(kk)
		if want, wok := ref[kk]; ok != wok || v != want {
			require.Failf(t, "Load wrong", "step %d: Load(%v) = %v, %v; want %v, %v", step, kk, v, ok, want, wok)
		}
		if step%10_000 == 0 {
			require.Equal(t, len(ref), m.Len(), "step %d: Len", step)
			require.Equal(t, ref, maps.Collect(m.All()), "step %d: contents", step)
		}
	}
	assert.Equal(t, ref, maps.Collect(m.All()), "final contents")
	assert.Equal(t, len(ref), m.Len(), "final Len")
}

func TestMapLoadDoesNotAllocate(t *testing.T) {
	m := readmodel.NewMap[string, view]()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "product-" + strconv.Itoa(i)
		m.Put(context.Background(), keys[i], view{Title: keys[i], Price: i})
	}
	i := 0
	missing := 0
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := m.Load(keys[i%len(keys)]); !ok {
			missing++
		}
		_, _ = m.Load("absent")
		i++
	})
	assert.Zero(t, missing, "keys missing")
	assert.Zero(t, allocs, "allocations per Load")
}

// view is a typical small read model.
type view struct {
	Title string
	Price int
	Tags  []string
}

// TestMapBuilder fills a Map through a builder, changing values in place
// through the pointers Put and Value return, and checks the built Map
// holds the changed values.
func TestMapBuilder(t *testing.T) {
	b := readmodel.NewMapBuilder[string, []int]()
	const n = 3000 // several table rebuilds per shard
	for i := range n {
		p := b.Put(strconv.Itoa(i), []int{i})
		*p = append(*p, -i) // in place
	}
	for i := 0; i < n; i += 3 {
		p := b.Value(strconv.Itoa(i))
		require.NotNil(t, p)
		*p = append(*p, 1)
	}
	require.Nil(t, b.Value("absent"))
	old := b.Value("7")
	b.Put("7", []int{70})
	require.Equal(t, []int{70}, *b.Value("7"), "Put replaces")
	require.Equal(t, []int{7, -7}, *old, "an earlier pointer is left alone")
	seen := 0
	b.Range(func(k string, v *[]int) bool {
		seen++
		*v = append(*v, 0)
		return true
	})
	require.Equal(t, n, seen)
	require.Equal(t, n, b.Len())
	m := b.Map()
	require.Equal(t, n, m.Len())
	for i := range n {
		want := []int{i, -i}
		if i%3 == 0 {
			want = append(want, 1)
		}
		if i == 7 {
			want = []int{70}
		}
		want = append(want, 0)
		got, ok := m.Load(strconv.Itoa(i))
		require.True(t, ok)
		require.Equal(t, want, got, "key %d", i)
	}
	stop := 0
	readmodel.NewMapBuilder[int, int]().Range(func(int, *int) bool { stop++; return false })
	require.Zero(t, stop, "Range of an empty builder")
}

// TestMapStoreRef checks that StoreRef stores the value whatever happened
// to the key since LoadRef: nothing, a Put, a Delete (and a re-Put), the
// shard's table growing or shrinking, and for a key that was absent.
func TestMapStoreRef(t *testing.T) {
	m := readmodel.NewMap[string, int]()
	ctx := context.Background()
	for i := range 100 {
		require.NoError(t, m.Put(ctx, strconv.Itoa(i), i))
	}
	cases := []struct {
		name    string
		between func(key string)
	}{
		{"untouched", func(string) {}},
		{"put since", func(k string) { _ = m.Put(ctx, k, -1) }},
		{"deleted since", func(k string) { _ = m.Delete(ctx, k) }},
		{"deleted and put since", func(k string) { _ = m.Delete(ctx, k); _ = m.Put(ctx, k, -2) }},
		{"tables grew", func(string) {
			for i := range 5000 {
				_ = m.Put(ctx, "grow"+strconv.Itoa(i), i)
			}
		}},
		{"tables shrank", func(string) {
			for i := range 5000 {
				_ = m.Delete(ctx, "grow"+strconv.Itoa(i))
			}
		}},
	}
	for i, c := range cases {
		key := strconv.Itoa(i)
		v, ref, ok := m.LoadRef(key)
		require.True(t, ok, c.name)
		require.Equal(t, i, v, c.name)
		c.between(key)
		m.StoreRef(ref, key, 1000+i)
		got, ok := m.Load(key)
		require.True(t, ok, c.name)
		require.Equal(t, 1000+i, got, c.name)
	}
	_, ref, ok := m.LoadRef("absent")
	require.False(t, ok)
	m.StoreRef(ref, "absent", 7)
	got, _ := m.Load("absent")
	require.Equal(t, 7, got, "StoreRef of an absent key")
	require.Equal(t, 101, m.Len())
	n := 0
	m.Range(func(string, int) bool { n++; return true })
	require.Equal(t, 101, n, "each key once")
}

// TestMapModify checks that Modify changes a copy (a value read before is
// unchanged), stores it, reports absent keys without calling fn, and leaves
// the Map unchanged when fn panics.
func TestMapModify(t *testing.T) {
	m := readmodel.NewMap[string, []int]()
	ctx := context.Background()
	require.NoError(t, m.Put(ctx, "a", []int{1, 2}))
	before, _ := m.Load("a")
	require.True(t, m.Modify("a", func(old, v *[]int) {
		require.Equal(t, []int{1, 2}, *old)
		*v = append((*v)[:0:0], 3)
	}))
	got, _ := m.Load("a")
	require.Equal(t, []int{3}, got)
	require.Equal(t, []int{1, 2}, before, "a value read before is unchanged")
	called := false
	require.False(t, m.Modify("absent", func(_, _ *[]int) { called = true }))
	require.False(t, called)
	_, ok := m.Load("absent")
	require.False(t, ok)
	require.Panics(t, func() {
		m.Modify("a", func(_, v *[]int) {
			*v = []int{9}
			panic("boom")
		})
	})
	got, _ = m.Load("a")
	require.Equal(t, []int{3}, got, "unchanged after a panic")
	require.True(t, m.Modify("a", func(_, v *[]int) {}), "the shard is unlocked after a panic")
}
