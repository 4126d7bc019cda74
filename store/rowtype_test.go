package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cqrskit/cqrs/store"
)

// countedRow is a row whose Clone method reports each call.
type countedRow struct {
	Tags []string
}

var cloneCalls int // only touched by TestCloneHook, which is not parallel

func (r countedRow) Clone() countedRow {
	cloneCalls++
	r.Tags = append([]string(nil), r.Tags...)
	return r
}

func TestCloneHook(t *testing.T) {
	m := store.NewMemory()
	tbl := store.NewTable[string, countedRow](m, "t")
	cloneCalls = 0
	_, err := m.Update(context.Background(), func(tx store.Tx) error {
		if _, err := tbl.Put(tx, "k", countedRow{Tags: []string{"a"}}); err != nil {
			return err
		}
		r, _, err := tbl.Get(tx, "k")
		if err != nil {
			return err
		}
		r.Tags[0] = "changed"
		r2, _, err := tbl.Get(tx, "k")
		if err == nil && r2.Tags[0] != "a" {
			t.Errorf("Get after an in-place edit = %v", r2.Tags)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if cloneCalls != 3 {
		t.Fatalf("Clone called %d times, want 3 (Put, Get, Get)", cloneCalls)
	}
}

func TestChecksReachNestedValues(t *testing.T) {
	type inner struct{ S string }
	type row struct {
		Pairs [2]inner
		Ptr   *inner
		Many  [20]string
	}
	type bigKey [20]string
	m := store.NewMemory()
	rows := store.NewTable[string, row](m, "rows")
	keys := store.NewTable[bigKey, int](m, "keys")
	for name, fn := range map[string]func(tx store.Tx) error{
		"array of structs": func(tx store.Tx) error {
			_, err := rows.Put(tx, "k", row{Pairs: [2]inner{{}, {S: "\x00"}}})
			return err
		},
		"pointer": func(tx store.Tx) error {
			_, err := rows.Put(tx, "k", row{Ptr: &inner{S: "\xff"}})
			return err
		},
		"long array": func(tx store.Tx) error {
			var r row
			r.Many[19] = "\x00"
			_, err := rows.Put(tx, "k", r)
			return err
		},
		"long array key": func(tx store.Tx) error {
			var k bigKey
			k[19] = "\xff"
			_, err := keys.Put(tx, k, 1)
			return err
		},
	} {
		_, err := m.Update(context.Background(), fn)
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}
