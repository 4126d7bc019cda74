package readmodel_test

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/readmodel/readmodeltest"
	"github.com/cqrskit/cqrs/store"
)

func TestMapConformance(t *testing.T) {
	readmodeltest.Run(t, func(*testing.T) readmodel.Store[string, readmodeltest.Doc] {
		return readmodel.NewMap[string, readmodeltest.Doc]()
	})
}

func TestMapLoadGet(t *testing.T) {
	m := readmodel.NewMap[string, int]()
	if v, ok := m.Load("a"); ok || v != 0 {
		t.Fatalf("Load on empty map = %v, %v", v, ok)
	}
	if _, err := m.Get(context.Background(), "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get on empty map: %v", err)
	}
	if err := m.Put(context.Background(), "a", 1); err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Load("a"); !ok || v != 1 {
		t.Fatalf("Load = %v, %v; want 1, true", v, ok)
	}
	if v, err := m.Get(context.Background(), "a"); err != nil || v != 1 {
		t.Fatalf("Get = %v, %v; want 1, nil", v, err)
	}
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
	if !slices.Equal(sawOK, []bool{false, true}) {
		t.Fatalf("fn saw ok = %v, want [false true]", sawOK)
	}
	if v, _ := m.Load("a"); v != 2 {
		t.Fatalf("after two increments: %d", v)
	}
	if m.Len() != 1 {
		t.Fatalf("Len = %d", m.Len())
	}

	m.Update("a", func(int, bool) (int, bool) { return 0, false }) // deletes
	if _, ok := m.Load("a"); ok || m.Len() != 0 {
		t.Fatalf("key survived a delete: Len %d", m.Len())
	}
	m.Update("b", func(int, bool) (int, bool) { return 7, false }) // absent stays absent
	if _, ok := m.Load("b"); ok || m.Len() != 0 {
		t.Fatalf("keep=false inserted a key")
	}
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
	if v, _ := m.Load("a"); v != 2 {
		t.Fatalf("value after a panicking update = %d, want 2", v)
	}
}

func TestMapRangeLenClear(t *testing.T) {
	m := readmodel.NewMap[int, string]()
	want := map[int]string{}
	for i := range 1000 {
		m.Put(context.Background(), i, strconv.Itoa(i))
		want[i] = strconv.Itoa(i)
	}
	if m.Len() != 1000 {
		t.Fatalf("Len = %d", m.Len())
	}
	got := map[int]string{}
	m.Range(func(k int, v string) bool {
		if _, dup := got[k]; dup {
			t.Fatalf("Range visited %d twice", k)
		}
		got[k] = v
		return true
	})
	if !maps.Equal(got, want) {
		t.Fatalf("Range visited %d keys, want %d", len(got), len(want))
	}
	if got := maps.Collect(m.All()); !maps.Equal(got, want) {
		t.Fatalf("All yielded %d keys, want %d", len(got), len(want))
	}

	n := 0
	m.Range(func(int, string) bool { n++; return n < 10 })
	if n != 10 {
		t.Fatalf("Range went on after fn returned false: %d calls", n)
	}

	// fn may write to the map: Range holds no lock.
	m.Range(func(k int, _ string) bool {
		if k%2 == 0 {
			m.Delete(context.Background(), k)
		}
		return true
	})
	if m.Len() != 500 {
		t.Fatalf("Len after deleting evens in Range = %d", m.Len())
	}

	m.Clear()
	if m.Len() != 0 {
		t.Fatalf("Len after Clear = %d", m.Len())
	}
	m.Range(func(k int, _ string) bool { t.Fatalf("Range after Clear visited %d", k); return false })
	m.Put(context.Background(), 1, "one") // usable after Clear
	if v, ok := m.Load(1); !ok || v != "one" {
		t.Fatalf("Load after Clear and Put = %q, %v", v, ok)
	}
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
				if want, wok := ref[kk]; ok != wok || old != want {
					t.Fatalf("step %d: Update saw %v, %v; want %v, %v", step, old, ok, want, wok)
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
			t.Fatalf("step %d: Load(%v) = %v, %v; want %v, %v", step, kk, v, ok, want, wok)
		}
		if step%10_000 == 0 {
			if m.Len() != len(ref) {
				t.Fatalf("step %d: Len = %d, want %d", step, m.Len(), len(ref))
			}
			if got := maps.Collect(m.All()); !maps.Equal(got, ref) {
				t.Fatalf("step %d: contents differ", step)
			}
		}
	}
	if got := maps.Collect(m.All()); !maps.Equal(got, ref) || m.Len() != len(ref) {
		t.Fatalf("final contents differ")
	}
}

func TestMapLoadDoesNotAllocate(t *testing.T) {
	m := readmodel.NewMap[string, view]()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "product-" + strconv.Itoa(i)
		m.Put(context.Background(), keys[i], view{Title: keys[i], Price: i})
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := m.Load(keys[i%len(keys)]); !ok {
			t.Fatal("missing key")
		}
		_, _ = m.Load("absent")
		i++
	})
	if allocs != 0 {
		t.Fatalf("Load allocates %v times per call", allocs)
	}
}

// view is a typical small read model.
type view struct {
	Title string
	Price int
	Tags  []string
}
