package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/event/natsbus"
	"github.com/cqrskit/cqrs/store"
)

type itemAdded struct {
	N int `json:"n"`
}

func (itemAdded) EventType() string { return "test.item_added" }

type itemRenamed struct {
	Name string `json:"name"`
}

func (itemRenamed) EventType() string { return "test.item.renamed" }

func registry(t testing.TB) *event.Registry {
	t.Helper()
	reg := event.NewRegistry()
	if err := errors.Join(event.Register[itemAdded](reg), event.Register[itemRenamed](reg)); err != nil {
		t.Fatal(err)
	}
	return reg
}

// write commits n records, in units of work of 1 to 3, and returns the last
// position.
func write(t testing.TB, st store.Store, from, n int) event.Position {
	t.Helper()
	var last event.Position
	for i := 0; i < n; {
		k := min(1+i%3, n-i)
		pos, err := st.Update(context.Background(), func(tx store.Tx) error {
			for j := range k {
				tx.Record(fmt.Sprintf("item/%d", (from+i+j)%7), itemAdded{N: from + i + j})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		last = pos
		i += k
	}
	return last
}

func TestRelayMessages(t *testing.T) {
	_, js := machineNATS(t)
	reg := registry(t)
	name, opts := unique(t, js)
	prefix := "t." + name
	m := store.NewMemory()
	ctx := event.WithMetadata(context.Background(), event.Metadata{CorrelationID: "corr", CausationID: "cause", UserID: "ann",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	if _, err := m.Update(ctx, func(tx store.Tx) error {
		tx.Record("item/1", itemAdded{N: 1})
		tx.Record("order.x/2", itemRenamed{Name: "pen"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	last := write(t, m, 2, 5)
	r := natsbus.NewRelay(js, m, reg, append(opts, natsbus.WithHeaders(func(rec event.Record, h nats.Header) {
		h.Set("X-Test-Record", rec.ID.String())
	}))...)
	running(t, r)
	waitPublished(t, r, last)

	recs, err := m.Read(context.Background(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs {
		msg, err := s.GetMsg(context.Background(), uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			jetstream.MsgIDHeader:       rec.ID.String(),
			natsbus.HeaderPosition:      rec.Position.String(),
			natsbus.HeaderPrevPosition:  fmt.Sprint(uint64(rec.Position) - 1),
			natsbus.HeaderStream:        rec.Stream,
			natsbus.HeaderVersion:       fmt.Sprint(rec.Version),
			natsbus.HeaderType:          rec.Type,
			natsbus.HeaderTime:          rec.Time.Format(time.RFC3339Nano),
			natsbus.HeaderCorrelationID: rec.Metadata.CorrelationID,
			natsbus.HeaderCausationID:   rec.Metadata.CausationID,
			natsbus.HeaderUserID:        rec.Metadata.UserID,
			natsbus.HeaderTraceParent:   rec.Metadata.TraceParent,
			"X-Test-Record":             rec.ID.String(),
		}
		for k, v := range want {
			if got := msg.Header.Get(k); got != v {
				t.Errorf("message %d header %s = %q, want %q", i+1, k, got, v)
			}
		}
		if wantSubj := natsbus.Subject(prefix, rec.Stream, rec.Type); msg.Subject != wantSubj {
			t.Errorf("message %d subject %q, want %q", i+1, msg.Subject, wantSubj)
		}
	}
	if got := natsbus.Subject(prefix, "order.x/2", "test.item.renamed"); got != prefix+".order_x.test.item.renamed" {
		t.Errorf("Subject = %q", got)
	}

	// Consumers can filter by category and by type.
	count := func(filter string) int {
		info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(filter))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range info.State.Subjects {
			n += int(c)
		}
		return n
	}
	if n := count(natsbus.ByCategory(prefix, "item")); n != 6 {
		t.Errorf("ByCategory(item) matches %d messages, want 6", n)
	}
	if n := count(natsbus.ByType(prefix, "test.item.renamed")); n != 1 {
		t.Errorf("ByType(test.item.renamed) matches %d messages, want 1", n)
	}
}

// A relay stopped and started again (here: many times, while the log
// grows) continues exactly after the newest position in the stream.
func TestRelayResumes(t *testing.T) {
	_, js := machineNATS(t)
	reg := registry(t)
	name, opts := unique(t, js)
	m := store.NewMemory()
	total := 0
	for round := range 6 {
		total += 40
		last := write(t, m, total-40, 40)
		var ropts []natsbus.Option
		if round%2 == 1 {
			ropts = append(ropts, natsbus.WithSync())
		}
		r := natsbus.NewRelay(js, m, reg, append(opts, ropts...)...)
		stop := running(t, r)
		waitPublished(t, r, last)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	assertExactlyOnce(t, streamPositions(t, js, name), total)
}

// Two relays racing on one log and one stream never interleave or
// duplicate: each publish expects the stream's last sequence, so the loser
// is refused and re-reads the tail.
func TestRelayFencing(t *testing.T) {
	_, js := machineNATS(t)
	reg := registry(t)
	name, opts := unique(t, js)
	m := store.NewMemory()
	if _, err := natsbus.EnsureStream(context.Background(), js, opts...); err != nil {
		t.Fatal(err)
	}
	relays := []*natsbus.Relay{
		natsbus.NewRelay(js, m, reg, append(opts, natsbus.WithWindow(64))...),
		natsbus.NewRelay(js, m, reg, append(opts, natsbus.WithWindow(7))...),
		natsbus.NewRelay(js, m, reg, append(opts, natsbus.WithSync())...),
	}
	for _, r := range relays {
		running(t, r)
	}
	const n = 3000
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() { write(t, m, w*n/3, n/3) })
	}
	wg.Wait()
	head, _ := m.Head(context.Background())
	var fenced int64
	for _, r := range relays {
		waitPublished(t, r, head)
		fenced += r.Status().Fenced
	}
	t.Logf("refused publishes (fencing): %d", fenced)
	assertExactlyOnce(t, streamPositions(t, js, name), n)
}

// A foreign message on the stream's subjects moves the stream under the
// relay: the relay is refused, re-reads the tail (stepping over the foreign
// message) and goes on; followers see the foreign message as malformed.
func TestRelayForeignPublisher(t *testing.T) {
	nc, js := machineNATS(t)
	reg := registry(t)
	name, opts := unique(t, js)
	m := store.NewMemory()
	r := natsbus.NewRelay(js, m, reg, opts...)
	running(t, r)
	p := write(t, m, 0, 10)
	waitPublished(t, r, p)
	if err := nc.Publish("t."+name+".item.junk", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p = write(t, m, 10, 10)
	waitPublished(t, r, p)
	if r.Status().Fenced == 0 {
		t.Error("the relay was not refused after a foreign publish")
	}

	f := natsbus.NewFollower(js, reg, opts...)
	defer f.Close()
	got := readAll(t, f, 0)
	var me *natsbus.MalformedError
	if len(got.recs) != 10 || !errors.As(got.err, &me) || me.Seq != 11 || me.After != 10 {
		t.Fatalf("Read stopped after %d records with %v; want 10 and a *MalformedError at sequence 11 after 10", len(got.recs), got.err)
	}
	var skipped []*natsbus.MalformedError
	fs := natsbus.NewFollower(js, reg, append(opts, natsbus.SkipMalformed(func(e *natsbus.MalformedError) { skipped = append(skipped, e) }))...)
	defer fs.Close()
	got = readAll(t, fs, 0)
	if got.err != nil || len(got.recs) != 20 || len(skipped) != 1 {
		t.Fatalf("with SkipMalformed: %d records, %v, %d skipped; want 20, nil, 1", len(got.recs), got.err, len(skipped))
	}
}

type readResult struct {
	recs []event.Record
	err  error
}

// readAll reads from after to the end (or the first error).
func readAll(t testing.TB, lg store.Log, after event.Position) readResult {
	t.Helper()
	var out readResult
	for {
		buf, err := lg.Read(context.Background(), after, make([]event.Record, 0, 7))
		out.recs = append(out.recs, buf...)
		if err != nil {
			out.err = err
			return out
		}
		if len(buf) == 0 {
			return out
		}
		after = buf[len(buf)-1].Position
	}
}
