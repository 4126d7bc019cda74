package store_test

import (
	"context"
	"testing"

	"github.com/cqrskit/cqrs/store"
)

// Rows for the copy benchmarks: one of plain values, and two holding a
// slice, with and without a Clone method.
type (
	flatRow struct {
		Name  string
		Cents int64
		Stock int
	}
	sliceRow struct {
		Name string
		Tags []string
	}
	clonedRow struct {
		Name string
		Tags []string
	}
)

func (r clonedRow) Clone() clonedRow {
	r.Tags = append([]string(nil), r.Tags...)
	return r
}

// benchGetPut measures a unit of work that reads a row and writes it back,
// the shape of a command handler.
func benchGetPut[V any](b *testing.B, v V) {
	ctx := context.Background()
	m := store.NewMemory()
	tbl := store.NewTable[string, V](m, "t")
	if _, err := m.Update(ctx, func(tx store.Tx) error {
		_, err := tbl.Put(tx, "k", v)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	fn := func(tx store.Tx) error {
		r, _, err := tbl.Get(tx, "k")
		if err != nil {
			return err
		}
		_, err = tbl.Put(tx, "k", r)
		return err
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Update(ctx, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTableGetPut(b *testing.B) {
	tags := []string{"red", "large", "sale"}
	b.Run("flat", func(b *testing.B) { benchGetPut(b, flatRow{Name: "widget", Cents: 999, Stock: 3}) })
	b.Run("slice+Clone", func(b *testing.B) { benchGetPut(b, clonedRow{Name: "widget", Tags: tags}) })
	b.Run("slice+reflect", func(b *testing.B) { benchGetPut(b, sliceRow{Name: "widget", Tags: tags}) })
}
