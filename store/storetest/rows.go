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
