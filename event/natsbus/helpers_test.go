package natsbus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/event/natsbus"
)

const waitLimit = 20 * time.Second

// machineNATS connects to the NATS server named by CQRSKIT_NATS_URL, or
// skips the test.
func machineNATS(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	url := os.Getenv("CQRSKIT_NATS_URL")
	if url == "" {
		t.Skip("CQRSKIT_NATS_URL is not set: no NATS JetStream server to test against")
	}
	return connect(t, url)
}

func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to NATS at %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// unique returns stream/prefix options private to the test; the stream is
// deleted when the test ends.
func unique(t testing.TB, js jetstream.JetStream) (string, []natsbus.Option) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "T" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Logf("delete stream %s: %v", name, err)
		}
	})
	return name, []natsbus.Option{natsbus.WithStream(name), natsbus.WithSubjectPrefix("t." + name)}
}

// running starts r and returns a function that stops it and returns Run's
// result.
func running(t testing.TB, r *natsbus.Relay) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitPublished waits until r has published pos.
func waitPublished(t testing.TB, r *natsbus.Relay, pos event.Position) {
	t.Helper()
	// The limit is on a stall, not on the whole wait: a backlog that grew
	// while the machine was busy (a writer that ran on through outages)
	// takes as long as it takes, but a relay that stops publishing fails.
	last := r.Status().Published
	deadline := time.Now().Add(waitLimit)
	for last < pos {
		if time.Now().After(deadline) {
			t.Fatalf("relay published nothing for %v: up to %v, want %v (status %+v)", waitLimit, last, pos, r.Status())
		}
		time.Sleep(time.Millisecond)
		if p := r.Status().Published; p > last {
			last, deadline = p, time.Now().Add(waitLimit)
		}
	}
}

// streamPositions returns the positions the stream holds, in sequence
// order, failing on messages without one.
func streamPositions(t testing.TB, js jetstream.JetStream, name string) []event.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	var out []event.Position
	for seq := uint64(0); seq < info.State.LastSeq; {
		m, err := it.Next()
		if err != nil {
			t.Fatalf("read stream %s after sequence %d: %v", name, seq, err)
		}
		md, _ := m.Metadata()
		seq = md.Sequence.Stream
		p, err := event.ParsePosition(m.Headers().Get(natsbus.HeaderPosition))
		if err != nil {
			t.Fatalf("stream %s sequence %d: %v", name, seq, err)
		}
		out = append(out, p)
	}
	return out
}

// assertExactlyOnce checks that positions are exactly 1..n in order.
func assertExactlyOnce(t testing.TB, got []event.Position, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("stream holds %d messages, want %d", len(got), n)
	}
	for i, p := range got {
		if p != event.Position(i+1) {
			t.Fatalf("stream message %d holds position %v, want %v", i, p, i+1)
		}
	}
}
