package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

func testReadResume(t *testing.T, h Harness) {
	ctx := context.Background()
	var last event.Position
	n := 0
	for size := range 8 {
		last = mustUpdate(t, h, func(tx store.Tx) error {
			for range size%4 + 1 {
				n++
				tx.Record(fmt.Sprint("s/", n%3), Added{N: n})
			}
			return nil
		})
	}
	waitFor(t, h, last)
	all := readAll(t, h.Log, 0)
	if len(all) != n {
		t.Fatalf("log holds %d records, want %d", len(all), n)
	}
	for i, r := range all {
		if r.Data != (Added{N: i + 1}) {
			t.Fatalf("record %d = %v, want commit order", i, summary(all[i:i+1]))
		}
	}

	for _, capacity := range []int{0, 1, 3, 7, 64} {
		var got []event.Record
		after := event.Position(0)
		for {
			buf, err := h.Log.Read(ctx, after, make([]event.Record, 0, capacity))
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(buf) == 0 {
				break
			}
			if capacity > 0 && len(buf) > capacity {
				t.Fatalf("Read with cap %d returned %d records", capacity, len(buf))
			}
			got = append(got, buf...)
			after = buf[len(buf)-1].Position
		}
		assertSame(t, fmt.Sprint("paging with cap ", capacity), got, all)
	}

	for i := range all {
		assertSame(t, fmt.Sprint("resuming after record ", i), readAll(t, h.Log, all[i].Position), all[i+1:])
	}

	// Read appends to dst and keeps what was there.
	dst := make([]event.Record, 1, 4)
	dst[0].Stream = "kept"
	out, err := h.Log.Read(ctx, 0, dst)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(out) != 4 || out[0].Stream != "kept" {
		t.Fatalf("Read into a slice of len 1, cap 4 gave %d records, first %q", len(out), out[0].Stream)
	}
	assertSame(t, "Read into a non-empty slice", out[1:], all[:3])
	// A full dst receives a default batch (here: all the rest).
	out, err = h.Log.Read(ctx, all[0].Position, dst[:1:1])
	if err != nil || len(out) != len(all) {
		t.Fatalf("Read into a full slice: %d records, %v; want %d appended", len(out)-1, err, len(all)-1)
	}
	assertSame(t, "Read into a full slice", out[1:], all[1:])
}

func testHead(t *testing.T, h Harness) {
	if head := mustHead(t, h); head != 0 {
		t.Fatalf("Head of an empty log = %v", head)
	}
	p1 := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 1})
		return nil
	})
	waitFor(t, h, p1)
	if head := mustHead(t, h); head != p1 {
		t.Fatalf("Head = %v, want %v", head, p1)
	}
	p2 := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 2})
		tx.Record("t", Added{N: 3})
		return nil
	})
	waitFor(t, h, p2)
	if head := mustHead(t, h); head != p2 {
		t.Fatalf("Head = %v, want %v", head, p2)
	}
}

func testWait(t *testing.T, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p1 := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 1})
		return nil
	})
	if err := h.Log.Wait(ctx, p1-1); err != nil {
		t.Fatalf("Wait for a committed position: %v", err)
	}
	if err := h.Log.Wait(ctx, 0); err != nil {
		t.Fatalf("Wait(0) on a non-empty log: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- h.Log.Wait(ctx, p1) }()
	select {
	case err := <-done:
		t.Fatalf("Wait past the head returned before any commit: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	p2 := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 2})
		return nil
	})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait woken by a commit: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("Wait was not woken by a commit")
	}
	if head := mustHead(t, h); head < p2 {
		t.Fatalf("Wait returned but Head = %v < %v", head, p2)
	}

	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, ccancel)
	if err := h.Log.Wait(cctx, p2); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v, want context.Canceled", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if err := h.Log.Wait(dctx, p2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past its deadline: %v, want context.DeadlineExceeded", err)
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

func testMetadata(t *testing.T, h Harness) {
	md := event.Metadata{CorrelationID: "corr-1", CausationID: "cmd-1", UserID: "user-1",
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	ctx := event.WithMetadata(context.Background(), md)
	if _, err := h.Store.Update(ctx, func(tx store.Tx) error {
		tx.Record("s", Added{N: 1})
		tx.Record("t", Renamed{Name: "x"})
		return nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	last := mustUpdate(t, h, func(tx store.Tx) error {
		tx.Record("s", Added{N: 2})
		return nil
	})
	waitFor(t, h, last)
	recs := readAll(t, h.Log, 0)
	if len(recs) != 3 {
		t.Fatalf("log holds %v", summary(recs))
	}
	for i, want := range []event.Metadata{md, md, {}} {
		if recs[i].Metadata != want {
			t.Errorf("record %d: Metadata = %+v, want %+v", i, recs[i].Metadata, want)
		}
	}
}

func mustHead(t *testing.T, h Harness) event.Position {
	t.Helper()
	head, err := h.Log.Head(context.Background())
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return head
}

// waitFor waits until pos is readable. A durable log may lag behind the
// commit (see package doc), so the suite never reads without it.
func waitFor(t *testing.T, h Harness, pos event.Position) {
	t.Helper()
	if pos == 0 {
		t.Fatal("waitFor(0): the unit of work returned no position")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := h.Log.Wait(ctx, pos-1); err != nil {
		t.Fatalf("Wait for position %v: %v", pos, err)
	}
}

func readAll(t *testing.T, log store.Log, after event.Position) []event.Record {
	t.Helper()
	var out []event.Record
	for {
		buf, err := log.Read(context.Background(), after, make([]event.Record, 0, 100))
		if err != nil {
			t.Fatalf("Read after %v: %v", after, err)
		}
		if len(buf) == 0 {
			return out
		}
		out = append(out, buf...)
		after = buf[len(buf)-1].Position
	}
}

func assertSame(t *testing.T, what string, got, want []event.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d:\ngot  %v\nwant %v", what, len(got), len(want), summary(got), summary(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Position != w.Position || g.Stream != w.Stream || g.Version != w.Version ||
			g.Type != w.Type || g.Metadata != w.Metadata || !g.Time.Equal(w.Time) || !reflect.DeepEqual(g.Data, w.Data) {
			t.Fatalf("%s: record %d = %v, want %v", what, i, summary(got[i:i+1]), summary(want[i:i+1]))
		}
	}
}

func summary(recs []event.Record) string {
	s := "["
	for i, r := range recs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%v:%s/v%d:%v", r.Position, r.Stream, r.Version, r.Data)
	}
	return s + "]"
}
