package storetest

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

// assertInvalid fails unless err is a *store.InvalidError matching
// store.ErrInvalid and nothing else a retry loop would act on.
func assertInvalid(t *testing.T, err error, what string) {
	t.Helper()
	var ie *store.InvalidError
	if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ie) {
		t.Fatalf("%s: got %v, want a *store.InvalidError", what, err)
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("%s: %v also matches ErrConflict or ErrUnavailable", what, err)
	}
}

// testNilEvent: recording a nil event fails the unit of work with nothing
// applied, whatever else it wrote.
func testNilEvent(t *testing.T, h Harness) {
	ctx := context.Background()
	accounts := store.NewTable[string, account](h.Store, "accounts")
	_, err := h.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := accounts.Put(tx, "a1", account{Owner: "ann"}); err != nil {
			return err
		}
		tx.Record("account/a1", Added{N: 1})
		tx.Record("account/a1", nil)
		return nil
	})
	assertInvalid(t, err, "Update recording a nil event")
	var ie *store.InvalidError
	if errors.As(err, &ie); ie.What != "event" {
		t.Fatalf("InvalidError.What = %q, want %q", ie.What, "event")
	}
	assertNothing(t, h, accounts, "a1", "after a nil event")
	var v uint64
	mustUpdate(t, h, func(tx store.Tx) error {
		var err error
		v, err = tx.StreamVersion("account/a1")
		return err
	})
	if v != 0 {
		t.Fatalf("stream version after a nil event = %d, want 0", v)
	}
}

// testRollbackInPlace: a handler that edits, in place, the slice or map it
// read and then fails leaves the stored row as it was; so does one that
// edits a value after writing it.
func testRollbackInPlace(t *testing.T, h Harness) {
	ctx := context.Background()
	lists := store.NewTable[string, []int](h.Store, "lists")
	maps := store.NewTable[string, map[string]int](h.Store, "maps")
	type nested struct {
		Tags  []string
		Inner *struct{ N []int }
	}
	nests := store.NewTable[string, nested](h.Store, "nested")
	mustUpdate(t, h, func(tx store.Tx) error {
		if _, err := lists.Put(tx, "k", []int{1, 2}); err != nil {
			return err
		}
		if _, err := maps.Put(tx, "k", map[string]int{"a": 1}); err != nil {
			return err
		}
		_, err := nests.Put(tx, "k", nested{Tags: []string{"x"}, Inner: &struct{ N []int }{N: []int{1}}})
		return err
	})
	errBoom := errors.New("boom")
	_, err := h.Store.Update(ctx, func(tx store.Tx) error {
		l, _, err := lists.Get(tx, "k")
		if err != nil {
			return err
		}
		l[0] = 99
		m, _, err := maps.Get(tx, "k")
		if err != nil {
			return err
		}
		m["a"] = 99
		m["b"] = 2
		n, _, err := nests.Get(tx, "k")
		if err != nil {
			return err
		}
		n.Tags[0] = "changed"
		n.Inner.N[0] = 99
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update: got %v, want the handler's error", err)
	}
	// A committed handler that edits what it read without writing it back,
	// and edits what it wrote after Put, does not change the row either.
	mustUpdate(t, h, func(tx store.Tx) error {
		l, _, err := lists.Get(tx, "k")
		if err != nil {
			return err
		}
		l[1] = 98
		m := map[string]int{"a": 1}
		if _, err := maps.Put(tx, "k", m); err != nil {
			return err
		}
		m["a"] = 97
		return nil
	})
	if r := getRow(t, h, lists, "k"); !reflect.DeepEqual(r.val, []int{1, 2}) || r.ver != 1 {
		t.Fatalf("slice row = %v (version %d), want [1 2] at version 1", r.val, r.ver)
	}
	if r := getRow(t, h, maps, "k"); !reflect.DeepEqual(r.val, map[string]int{"a": 1}) || r.ver != 2 {
		t.Fatalf("map row = %v (version %d), want map[a:1] at version 2", r.val, r.ver)
	}
	if r := getRow(t, h, nests, "k"); r.val.Tags[0] != "x" || r.val.Inner.N[0] != 1 {
		t.Fatalf("nested row = %+v, want the committed one", r.val)
	}
}

// pairKey is a composite key whose fields, printed with fmt.Sprint, collide
// for different keys: {"a b" "c"} and {"a" "b c"} both print as {a b c}.
type pairKey struct {
	A string
	B string
}

// testCompositeKeys: different keys are different rows on every store, and
// errors name keys in one encoding: strings as they are, other keys as JSON.
func testCompositeKeys(t *testing.T, h Harness) {
	pairs := store.NewTable[pairKey, account](h.Store, "pairs")
	k1, k2 := pairKey{"a b", "c"}, pairKey{"a", "b c"}
	mustUpdate(t, h, func(tx store.Tx) error {
		if err := pairs.Insert(tx, k1, account{Owner: "one"}); err != nil {
			return err
		}
		return pairs.Insert(tx, k2, account{Owner: "two"})
	})
	if r := getRow(t, h, pairs, k1); r.val.Owner != "one" || r.ver != 1 {
		t.Fatalf("row %v = %+v", k1, r)
	}
	if r := getRow(t, h, pairs, k2); r.val.Owner != "two" || r.ver != 1 {
		t.Fatalf("row %v = %+v", k2, r)
	}
	_, err := h.Store.Update(context.Background(), func(tx store.Tx) error {
		_, _, err := pairs.Get(tx, pairKey{"x", "y"})
		return err
	})
	assertNotFound(t, err, "pairs", `{"A":"x","B":"y"}`)
	ints := store.NewTable[int, account](h.Store, "ints")
	_, err = h.Store.Update(context.Background(), func(tx store.Tx) error {
		_, _, err := ints.Get(tx, -7)
		return err
	})
	assertNotFound(t, err, "ints", "-7")
}

// opaque implements json.Marshaler and json.Unmarshaler, so its unexported
// field is its own business.
type opaque struct{ n int }

func (o opaque) MarshalJSON() ([]byte, error) { return []byte{byte('0' + o.n%10)}, nil }
func (o *opaque) UnmarshalJSON(b []byte) error {
	if len(b) == 1 {
		o.n = int(b[0] - '0')
	}
	return nil
}

// testRowFidelity: a row type that a durable store cannot round-trip is
// refused at its first write on every store, and so are non-finite floats.
func testRowFidelity(t *testing.T, h Harness) {
	ctx := context.Background()
	type hidden struct {
		Name   string
		secret string
	}
	type withFunc struct{ F func() }
	type withAny struct{ V any }
	type withComplex struct{ C complex128 }
	type skipped struct {
		Name string `json:"-"`
	}
	hiddenT := store.NewTable[string, hidden](h.Store, "hidden")
	funcsT := store.NewTable[string, withFunc](h.Store, "funcs")
	anysT := store.NewTable[string, withAny](h.Store, "anys")
	complexT := store.NewTable[string, withComplex](h.Store, "complex")
	skippedT := store.NewTable[string, skipped](h.Store, "skipped")
	ptrkeysT := store.NewTable[*int, account](h.Store, "ptrkeys")
	refuse := func(what string, fn func(tx store.Tx) error) {
		t.Helper()
		_, err := h.Store.Update(ctx, fn)
		assertInvalid(t, err, what)
	}
	refuse("unexported field", func(tx store.Tx) error {
		_, err := hiddenT.Put(tx, "k", hidden{Name: "n", secret: "s"})
		return err
	})
	refuse("func field", func(tx store.Tx) error {
		_, err := funcsT.Put(tx, "k", withFunc{})
		return err
	})
	refuse("interface field", func(tx store.Tx) error {
		_, err := anysT.Put(tx, "k", withAny{V: 1})
		return err
	})
	refuse("complex field", func(tx store.Tx) error {
		_, err := complexT.Put(tx, "k", withComplex{})
		return err
	})
	refuse(`json:"-" field`, func(tx store.Tx) error {
		_, err := skippedT.Put(tx, "k", skipped{Name: "n"})
		return err
	})
	refuse("pointer key", func(tx store.Tx) error {
		_, err := ptrkeysT.Put(tx, new(int), account{})
		return err
	})

	type measure struct {
		Name   string
		Values []float64
		ByDay  map[string]float32
		When   time.Time
		Opaque opaque
	}
	measures := store.NewTable[string, measure](h.Store, "measures")
	floats := store.NewTable[float64, measure](h.Store, "floats")
	for _, bad := range []struct {
		what string
		fn   func(tx store.Tx) error
	}{
		{"NaN in a slice", func(tx store.Tx) error {
			_, err := measures.Put(tx, "k", measure{Values: []float64{1, math.NaN()}})
			return err
		}},
		{"+Inf in a map", func(tx store.Tx) error {
			_, err := measures.Put(tx, "k", measure{ByDay: map[string]float32{"mon": float32(math.Inf(1))}})
			return err
		}},
		{"-Inf key", func(tx store.Tx) error {
			_, err := floats.Put(tx, math.Inf(-1), measure{})
			return err
		}},
	} {
		_, err := h.Store.Update(ctx, func(tx store.Tx) error {
			if err := bad.fn(tx); err != nil {
				return err
			}
			tx.Record("measures", Added{N: 1})
			return nil
		})
		assertInvalid(t, err, bad.what)
	}
	if head := mustHead(t, h); head != 0 {
		t.Fatalf("Head = %v after refused writes, want 0", head)
	}
	when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	want := measure{Name: "ok", Values: []float64{1.5, -0}, ByDay: map[string]float32{"mon": 2}, When: when, Opaque: opaque{n: 3}}
	mustUpdate(t, h, func(tx store.Tx) error {
		_, err := measures.Put(tx, "k", want)
		return err
	})
	got := getRow(t, h, measures, "k").val
	if !got.When.Equal(when) {
		t.Fatalf("time round trip: %v, want %v", got.When, when)
	}
	got.When = want.When
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("row = %+v, want %+v", got, want)
	}
}

// Texts are row values with a string field, for testBadText.
type text struct {
	S    string
	List []string
}

// testBadText: every store accepts and refuses the same strings in keys,
// row values and stream names: PostgreSQL text cannot hold a NUL byte or
// invalid UTF-8, so neither can any store.
func testBadText(t *testing.T, h Harness) {
	ctx := context.Background()
	texts := store.NewTable[string, text](h.Store, "texts")
	pairs := store.NewTable[pairKey, text](h.Store, "text-pairs")
	cases := []struct {
		name string
		s    string
		ok   bool
	}{
		{"ascii", "plain", true},
		{"unicode", "héllo ✓ 日本", true},
		{"tab and newline", "a\tb\nc", true},
		{"empty", "", true},
		{"NUL", "a\x00b", false},
		{"invalid UTF-8", "a\xffb", false},
		{"truncated rune", "\xe2\x82", false},
		{"surrogate half", "\xed\xa0\x80", false},
	}
	places := []struct {
		name string
		fn   func(tx store.Tx, s string) error
	}{
		{"row value", func(tx store.Tx, s string) error {
			_, err := texts.Put(tx, "k", text{S: s})
			return err
		}},
		{"row list element", func(tx store.Tx, s string) error {
			_, err := texts.Put(tx, "k", text{List: []string{"ok", s}})
			return err
		}},
		{"key", func(tx store.Tx, s string) error {
			_, err := texts.Put(tx, "k"+s, text{})
			return err
		}},
		{"key lookup", func(tx store.Tx, s string) error {
			_, err := texts.Exists(tx, "k"+s)
			return err
		}},
		{"composite key", func(tx store.Tx, s string) error {
			_, err := pairs.Put(tx, pairKey{A: "k", B: s}, text{})
			return err
		}},
		{"stream", func(tx store.Tx, s string) error {
			tx.Record("s/"+s, Added{N: 1})
			return nil
		}},
		{"stream version", func(tx store.Tx, s string) error {
			_, err := tx.StreamVersion("s/" + s)
			return err
		}},
	}
	var last event.Position // of the last accepted unit of work
	for _, p := range places {
		for _, c := range cases {
			// A durable log may not show the last accepted commit yet;
			// measure the head only once it does, so that the check below
			// sees what the rejected unit of work did and nothing else.
			if last > 0 {
				waitFor(t, h, last)
			}
			head := mustHead(t, h)
			pos, err := h.Store.Update(ctx, func(tx store.Tx) error {
				if err := p.fn(tx, c.s); err != nil {
					return err
				}
				tx.Record("marker", Added{N: 1})
				return nil
			})
			what := p.name + " " + c.name
			if c.ok {
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				last = pos
				continue
			}
			assertInvalid(t, err, what)
			if after := mustHead(t, h); after != head {
				t.Fatalf("%s: Head moved from %v to %v", what, head, after)
			}
		}
	}
}

// testInsertExisting: Insert of an existing key is an already-exists error,
// which is permanent (not ErrConflict, so a retry loop stops at once);
// PutIf with expected version 0 on an existing row stays a conflict.
func testInsertExisting(t *testing.T, h Harness) {
	ctx := context.Background()
	accounts := store.NewTable[string, account](h.Store, "accounts")
	pairs := store.NewTable[pairKey, account](h.Store, "pairs")
	mustUpdate(t, h, func(tx store.Tx) error {
		if err := pairs.Insert(tx, pairKey{"a", "b"}, account{}); err != nil {
			return err
		}
		return accounts.Insert(tx, "a", account{Owner: "ann"})
	})
	// A retry loop in the style of command.Retry: re-run on ErrConflict.
	attempts := 0
	var err error
	for range 5 {
		attempts++
		_, err = h.Store.Update(ctx, func(tx store.Tx) error {
			tx.Record("account/a", Added{N: 1})
			return accounts.Insert(tx, "a", account{Owner: "bob"})
		})
		if !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	var ae *store.AlreadyExistsError
	if !errors.Is(err, store.ErrAlreadyExists) || !errors.As(err, &ae) {
		t.Fatalf("Insert of an existing key: got %v, want a *store.AlreadyExistsError", err)
	}
	if ae.Table != "accounts" || ae.Key != "a" {
		t.Fatalf("AlreadyExistsError = %+v, want table accounts, key a", ae)
	}
	if attempts != 1 {
		t.Fatalf("a retry-on-conflict loop ran %d attempts, want 1", attempts)
	}
	_, err = h.Store.Update(ctx, func(tx store.Tx) error { return pairs.Insert(tx, pairKey{"a", "b"}, account{}) })
	if !errors.As(err, &ae) || ae.Key != `{"A":"a","B":"b"}` {
		t.Fatalf("Insert of an existing composite key: got %v", err)
	}
	_, err = h.Store.Update(ctx, func(tx store.Tx) error {
		_, err := accounts.PutIf(tx, "a", account{Owner: "bob"}, 0)
		return err
	})
	assertConflict(t, err, "accounts", "a", 0)
	if errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("PutIf(expected 0) on an existing row matches ErrAlreadyExists: %v", err)
	}
	if r := getRow(t, h, accounts, "a"); r.val.Owner != "ann" || r.ver != 1 {
		t.Fatalf("row after refused writes = %+v", r)
	}
	if head := mustHead(t, h); head != 0 {
		t.Fatalf("Head = %v after refused writes, want 0", head)
	}
}

// testReadDefaultBatch: Read with a nil or zero-capacity dst returns a
// sensible batch, not one record.
func testReadDefaultBatch(t *testing.T, h Harness) {
	const n = 300
	pos := mustUpdate(t, h, func(tx store.Tx) error {
		for i := range n {
			tx.Record("many", Added{N: i})
		}
		return nil
	})
	waitFor(t, h, pos)
	for _, dst := range []struct {
		name string
		buf  []event.Record
	}{
		{"nil", nil},
		{"zero capacity", make([]event.Record, 0)},
		{"full", make([]event.Record, 2)},
	} {
		got, err := h.Log.Read(context.Background(), 0, dst.buf)
		if err != nil {
			t.Fatalf("Read into %s dst: %v", dst.name, err)
		}
		got = got[len(dst.buf):]
		if len(got) < 100 || len(got) > n {
			t.Fatalf("Read into %s dst returned %d records, want a default batch of at least 100", dst.name, len(got))
		}
		for i, r := range got {
			if r.Data != (Added{N: i}) {
				t.Fatalf("Read into %s dst: record %d = %v", dst.name, i, r.Data)
			}
		}
	}
}
