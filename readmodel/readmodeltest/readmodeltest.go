package readmodeltest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/store"
)

// Doc is the view type the suite stores: a string, a slice (so that a
// store's encoding must round-trip nested data) and a number.
type Doc struct {
	Title string
	Tags  []string
	N     int
}

// equal reports whether two Docs are equal, treating a nil and an empty
// Tags as equal, since encodings differ on that.
func equal(a, b Doc) bool {
	return a.Title == b.Title && a.N == b.N && slices.Equal(a.Tags, b.Tags)
}

// Run runs the conformance suite as subtests of t, one per property, in the
// shape of testing/slogtest.Run. newStore must return an empty store,
// isolated from every other store it returns; it is called once per
// subtest and may register cleanup with t.Cleanup. A failure is reported
// in the subtest that names the broken property.
func Run(t *testing.T, newStore func(t *testing.T) readmodel.Store[string, Doc]) {
	t.Helper()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s readmodel.Store[string, Doc])
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"ZeroValue", testZeroValue},
		{"DistinctKeys", testDistinctKeys},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"DeleteMissing", testDeleteMissing},
		{"ManyKeys", testManyKeys},
		{"Concurrent", testConcurrent},
		{"CancelledContext", testCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t)) })
	}
}

// mustGet fails t unless key holds want.
func mustGet(t *testing.T, s readmodel.Store[string, Doc], key string, want Doc) {
	t.Helper()
	got, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): unexpected error %v", key, err)
	}
	if !equal(got, want) {
		t.Fatalf("Get(%q) = %+v, want %+v", key, got, want)
	}
}

// mustMiss fails t unless key is absent.
func mustMiss(t *testing.T, s readmodel.Store[string, Doc], key string) {
	t.Helper()
	got, err := s.Get(context.Background(), key)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%q) = %+v, %v; want an error matching store.ErrNotFound", key, got, err)
	}
}

// mustPut fails t if Put fails.
func mustPut(t *testing.T, s readmodel.Store[string, Doc], key string, d Doc) {
	t.Helper()
	if err := s.Put(context.Background(), key, d); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// mustDelete fails t if Delete fails.
func mustDelete(t *testing.T, s readmodel.Store[string, Doc], key string) {
	t.Helper()
	if err := s.Delete(context.Background(), key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
}

func testGetMissing(t *testing.T, s readmodel.Store[string, Doc]) {
	mustMiss(t, s, "missing")
}

func testPutGet(t *testing.T, s readmodel.Store[string, Doc]) {
	d := Doc{Title: "Espresso machine", Tags: []string{"kitchen", "coffee"}, N: 42}
	mustPut(t, s, "p1", d)
	mustGet(t, s, "p1", d)
	mustGet(t, s, "p1", d) // reading does not consume
}

func testZeroValue(t *testing.T, s readmodel.Store[string, Doc]) {
	// A stored zero value must be distinguishable from an absent key.
	mustPut(t, s, "zero", Doc{})
	mustGet(t, s, "zero", Doc{})
}

func testDistinctKeys(t *testing.T, s readmodel.Store[string, Doc]) {
	// Keys that a careless encoding could conflate.
	keys := []string{"", "a", "A", "a ", " a", "a:b", "a/b", "é", "e\u0301", "a\x00b", "a\x00c"}
	for i, k := range keys {
		mustPut(t, s, k, Doc{Title: k, N: i})
	}
	for i, k := range keys {
		mustGet(t, s, k, Doc{Title: k, N: i})
	}
}

func testOverwrite(t *testing.T, s readmodel.Store[string, Doc]) {
	mustPut(t, s, "p1", Doc{Title: "old", Tags: []string{"a", "b", "c"}, N: 1})
	want := Doc{Title: "new", Tags: []string{"d"}, N: 2}
	mustPut(t, s, "p1", want)
	mustGet(t, s, "p1", want)
}

func testDelete(t *testing.T, s readmodel.Store[string, Doc]) {
	mustPut(t, s, "p1", Doc{Title: "one"})
	mustPut(t, s, "p2", Doc{Title: "two"})
	mustDelete(t, s, "p1")
	mustMiss(t, s, "p1")
	mustGet(t, s, "p2", Doc{Title: "two"}) // other keys are untouched

	// A deleted key can be stored again.
	mustPut(t, s, "p1", Doc{Title: "again"})
	mustGet(t, s, "p1", Doc{Title: "again"})
}

func testDeleteMissing(t *testing.T, s readmodel.Store[string, Doc]) {
	mustDelete(t, s, "never-stored")
	mustPut(t, s, "p1", Doc{Title: "one"})
	mustDelete(t, s, "p1")
	mustDelete(t, s, "p1") // twice
	mustMiss(t, s, "p1")
}

func testManyKeys(t *testing.T, s readmodel.Store[string, Doc]) {
	const n = 2000
	key := func(i int) string { return "key-" + strconv.Itoa(i) }
	doc := func(i, gen int) Doc { return Doc{Title: key(i), Tags: []string{strconv.Itoa(gen)}, N: i} }
	for i := range n {
		mustPut(t, s, key(i), doc(i, 0))
	}
	for i := 0; i < n; i += 2 {
		mustDelete(t, s, key(i))
	}
	for i := 1; i < n; i += 4 {
		mustPut(t, s, key(i), doc(i, 1))
	}
	for i := range n {
		switch {
		case i%2 == 0:
			mustMiss(t, s, key(i))
		case i%4 == 1:
			mustGet(t, s, key(i), doc(i, 1))
		default:
			mustGet(t, s, key(i), doc(i, 0))
		}
	}
}

// testConcurrent runs writers on distinct keys alongside readers of all
// keys. Every value a reader sees must be one that was written, whole; at
// the end every key must hold its writer's last value.
func testConcurrent(t *testing.T, s readmodel.Store[string, Doc]) {
	const (
		writers = 4
		keysPer = 16
		rounds  = 50
		readers = 4
	)
	ctx := context.Background()
	key := func(w, k int) string { return fmt.Sprintf("w%d-k%d", w, k) }
	// doc encodes its key and round in every field, so a torn or mixed-up
	// value is detectable.
	doc := func(key string, round int) Doc {
		return Doc{Title: key, Tags: []string{key, strconv.Itoa(round)}, N: round}
	}
	check := func(key string, d Doc) error {
		if !equal(d, doc(key, d.N)) || d.N < 0 || d.N >= rounds {
			return fmt.Errorf("Get(%q) = %+v: not a value that was written", key, d)
		}
		return nil
	}

	var writing sync.WaitGroup
	errs := make(chan error, writers+readers)
	for w := range writers {
		writing.Go(func() {
			for r := range rounds {
				for k := range keysPer {
					if err := s.Put(ctx, key(w, k), doc(key(w, k), r)); err != nil {
						errs <- fmt.Errorf("writer: put: %w", err)
						return
					}
				}
			}
		})
	}
	done := make(chan struct{})
	var reading sync.WaitGroup
	for r := range readers {
		reading.Go(func() {
			for i := r; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := key(i%writers, i/writers%keysPer)
				d, err := s.Get(ctx, k)
				if errors.Is(err, store.ErrNotFound) {
					continue // not written yet
				}
				if err == nil {
					err = check(k, d)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	writing.Wait()
	close(done)
	reading.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		for k := range keysPer {
			mustGet(t, s, key(w, k), doc(key(w, k), rounds-1))
		}
	}
}

// testCancelled checks that a store either ignores a cancelled context or
// reports it, and that a write it reports as done is done.
func testCancelled(t *testing.T, s readmodel.Store[string, Doc]) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ctxErr := func(op string, err error) {
		t.Helper()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: error %v does not match context.Canceled", op, err)
		}
	}

	mustPut(t, s, "stored", Doc{Title: "stored"})
	d, err := s.Get(ctx, "stored")
	ctxErr("Get", err)
	if err == nil && !equal(d, Doc{Title: "stored"}) {
		t.Errorf("Get with a cancelled context = %+v, want the stored value", d)
	}
	if _, err := s.Get(ctx, "missing"); err != nil && !errors.Is(err, store.ErrNotFound) {
		ctxErr("Get of a missing key", err)
	}

	want := Doc{Title: "put while cancelled"}
	err = s.Put(ctx, "put", want)
	ctxErr("Put", err)
	if err == nil {
		mustGet(t, s, "put", want)
	}

	err = s.Delete(ctx, "stored")
	ctxErr("Delete", err)
	if err == nil {
		mustMiss(t, s, "stored")
	}
}
