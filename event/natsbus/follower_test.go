package natsbus_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/event/natsbus"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// publish writes a message as a relay would, for tests that build streams
// the relay would never write.
func publish(t testing.TB, js jetstream.JetStream, prefix string, pos, prev event.Position, data string) {
	t.Helper()
	h := nats.Header{}
	h.Set(jetstream.MsgIDHeader, uuid.NewString())
	h.Set(natsbus.HeaderPosition, pos.String())
	h.Set(natsbus.HeaderPrevPosition, prev.String())
	h.Set(natsbus.HeaderStream, "item/1")
	h.Set(natsbus.HeaderVersion, pos.String())
	h.Set(natsbus.HeaderType, itemAdded{}.EventType())
	h.Set(natsbus.HeaderTime, time.Now().Format(time.RFC3339Nano))
	if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: prefix + ".item.x", Header: h, Data: []byte(data)}); err != nil {
		t.Fatal(err)
	}
}

func TestFollowerRetention(t *testing.T) {
	_, js := machineNATS(t)
	reg := registry(t)
	_, opts := unique(t, js)
	m := store.NewMemory()
	r := natsbus.NewRelay(js, m, reg, append(opts, natsbus.WithStreamConfig(func(c *jetstream.StreamConfig) { c.MaxMsgs = 10 }))...)
	running(t, r)
	waitPublished(t, r, write(t, m, 0, 30))
	f := natsbus.NewFollower(js, reg, opts...)
	defer f.Close()
	for _, after := range []event.Position{0, 5, 19} {
		recs, err := f.Read(context.Background(), after, nil)
		var re *natsbus.RetentionError
		if len(recs) != 0 || !errors.Is(err, natsbus.ErrRetention) || !errors.As(err, &re) || re.FirstSeq != 21 {
			t.Fatalf("Read after %v: %d records, %v; want a *RetentionError at sequence 21", after, len(recs), err)
		}
	}
	if got := readAll(t, f, 20); got.err != nil || len(got.recs) != 10 || got.recs[0].Position != 21 {
		t.Fatalf("Read after 20 (retained): %d records, %v", len(got.recs), got.err)
	}
}

func TestFollowerGap(t *testing.T) {
	_, js := machineNATS(t)
	reg := registry(t)
	name, opts := unique(t, js)
	if _, err := natsbus.EnsureStream(context.Background(), js, opts...); err != nil {
		t.Fatal(err)
	}
	prefix := "t." + name
	publish(t, js, prefix, 1, 0, `{"n":1}`)
	publish(t, js, prefix, 2, 1, `{"n":2}`)
	publish(t, js, prefix, 4, 3, `{"n":4}`) // 3 is missing
	publish(t, js, prefix, 5, 4, `{"n":5}`)
	publish(t, js, prefix, 5, 4, `{"n":5}`) // a repeat
	f := natsbus.NewFollower(js, reg, opts...)
	defer f.Close()
	got := readAll(t, f, 0)
	var ge *natsbus.GapError
	if len(got.recs) != 2 || !errors.As(got.err, &ge) || ge.After != 2 || ge.Position != 4 {
		t.Fatalf("Read: %d records, %v; want 2 and a *GapError at 4 after 2", len(got.recs), got.err)
	}
	got = readAll(t, f, 4)
	if len(got.recs) != 1 || !errors.Is(got.err, natsbus.ErrGap) {
		t.Fatalf("Read after 4: %d records, %v; want 1 and ErrGap (position 5 twice)", len(got.recs), got.err)
	}
}

// A message that names its position but does not decode goes to the
// runner's policy as a *store.RecordError: parked here, the runner goes on.
func TestFollowerMalformedParked(t *testing.T) {
	_, js := machineNATS(t)
	reg := registry(t)
	name, opts := unique(t, js)
	if _, err := natsbus.EnsureStream(context.Background(), js, opts...); err != nil {
		t.Fatal(err)
	}
	prefix := "t." + name
	publish(t, js, prefix, 1, 0, `{"n":1}`)
	publish(t, js, prefix, 2, 1, `not json`)
	publish(t, js, prefix, 3, 2, `{"n":3}`)
	f := natsbus.NewFollower(js, reg, opts...)
	defer f.Close()

	recs, err := f.Read(context.Background(), 0, nil)
	var re *store.RecordError
	if len(recs) != 1 || !errors.As(err, &re) || re.Position != 2 || !errors.Is(err, natsbus.ErrMalformed) {
		t.Fatalf("Read: %d records, %v; want 1 and a *store.RecordError at 2 matching ErrMalformed", len(recs), err)
	}

	runner := projection.NewRunner(f)
	counter := &counting{}
	if err := runner.Add(counter, projection.AsAsync(), projection.WithPolicy(projection.Park), projection.WithRetry(1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer runner.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := runner.WaitFor(ctx, "", 3); err != nil {
		t.Fatal(err)
	}
	parked, err := runner.Parked(counter.Name())
	if err != nil || len(parked) != 1 || parked[0].Record.Position != 2 {
		t.Fatalf("parked %+v, %v; want position 2", parked, err)
	}
	if got := counter.seen(); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("applied %v, want [1 3]", got)
	}
}

func TestFollowerUnavailableStream(t *testing.T) {
	_, js := machineNATS(t)
	_, opts := unique(t, js)
	f := natsbus.NewFollower(js, registry(t), opts...)
	defer f.Close()
	if _, err := f.Read(context.Background(), 0, nil); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Read of a missing stream: %v, want store.ErrUnavailable", err)
	}
	if _, err := f.Head(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Head of a missing stream: %v, want store.ErrUnavailable", err)
	}
}

// A Follower resuming at an arbitrary position finds it by binary search:
// a few dozen requests for a stream of thousands, not a scan.
func TestFollowerLocateIsLogarithmic(t *testing.T) {
	nc, js := machineNATS(t)
	reg := registry(t)
	_, opts := unique(t, js)
	m := store.NewMemory()
	r := natsbus.NewRelay(js, m, reg, opts...)
	running(t, r)
	const n = 4000
	waitPublished(t, r, write(t, m, 0, n))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		after := event.Position(rng.IntN(n))
		f := natsbus.NewFollower(js, reg, opts...)
		before := nc.Stats().OutMsgs
		recs, err := f.Read(context.Background(), after, make([]event.Record, 0, 5))
		requests := nc.Stats().OutMsgs - before
		f.Close()
		if err != nil || len(recs) != min(5, n-int(after)) || (len(recs) > 0 && recs[0].Position != after+1) {
			t.Fatalf("Read after %v: %d records, %v", after, len(recs), err)
		}
		if requests > 40 {
			t.Fatalf("Read after %v on a stream of %d sent %d messages: a scan, not a search", after, n, requests)
		}
	}
}

// counting is a projector that records the N of each itemAdded.
type counting struct {
	mu sync.Mutex
	ns []int
}

func (c *counting) Name() string { return "counting" }

func (c *counting) Handle(_ context.Context, rec event.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ns = append(c.ns, rec.Data.(itemAdded).N)
	return nil
}

func (c *counting) seen() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.ns...)
}

// A consumer the Follower kept for the next Read may expire while its
// reader is idle; the next Read replaces it without an error.
func TestFollowerCursorExpired(t *testing.T) {
	_, js := machineNATS(t)
	reg := registry(t)
	name, opts := unique(t, js)
	m := store.NewMemory()
	r := natsbus.NewRelay(js, m, reg, opts...)
	running(t, r)
	waitPublished(t, r, write(t, m, 0, 20))
	f := natsbus.NewFollower(js, reg, opts...)
	defer f.Close()
	ctx := context.Background()
	recs, err := f.Read(ctx, 0, make([]event.Record, 0, 5))
	if err != nil || len(recs) != 5 {
		t.Fatalf("Read: %d records, %v", len(recs), err)
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for c := range s.ConsumerNames(ctx).Name() {
		if err := s.DeleteConsumer(ctx, c); err == nil {
			deleted++
		}
	}
	if deleted == 0 {
		t.Fatal("the Follower kept no consumer: nothing to expire")
	}
	// Read as a runner does: again while the log says there is more.
	deadline := time.Now().Add(waitLimit)
	for {
		recs, err = f.Read(ctx, 5, make([]event.Record, 0, 5))
		if err != nil {
			t.Fatalf("Read after the consumer expired: %v", err)
		}
		if len(recs) > 0 {
			break
		}
		if err := f.Wait(ctx, 5); err != nil || time.Now().After(deadline) {
			t.Fatalf("no records after the consumer expired (Wait: %v)", err)
		}
	}
	if len(recs) != 5 || recs[0].Position != 6 {
		t.Fatalf("Read after the consumer expired: %d records from %v", len(recs), recs[0].Position)
	}
}
