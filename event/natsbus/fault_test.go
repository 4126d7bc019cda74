package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cqrskit/cqrs/event/natsbus"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// Fault tests run against their own embedded NATS server (own port, own
// storage directory), which they stop, restart or leave alone while they
// kill a child process; they never touch the machine's server.

type embedded struct {
	t    testing.TB
	dir  string
	port int
	srv  *server.Server
}

func startEmbedded(t testing.TB) *embedded {
	t.Helper()
	e := &embedded{t: t, dir: t.TempDir(), port: -1}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *embedded) start() {
	e.t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: e.port, JetStream: true, StoreDir: e.dir, NoLog: true, NoSigs: true}
	srv, err := server.NewServer(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		e.t.Fatal("embedded NATS server did not start")
	}
	e.srv = srv
	e.port = srv.Addr().(*net.TCPAddr).Port // the same port after a restart
}

func (e *embedded) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", e.port) }

func (e *embedded) stop() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		e.srv = nil
	}
}

// The server restarts while the relay publishes and a runner follows: both
// report the outage while it lasts, reconnect by themselves, and afterwards
// every position is in the stream once and applied once.
func TestFaultServerRestart(t *testing.T) {
	e := startEmbedded(t)
	_, js := connect(t, e.url())
	reg := registry(t)
	name, opts := unique(t, js)
	m := store.NewMemory()
	r := natsbus.NewRelay(js, m, reg, append(opts, natsbus.WithWindow(64))...)
	running(t, r)
	f := natsbus.NewFollower(js, reg, opts...)
	defer f.Close()
	counter := &counting{}
	runner := projection.NewRunner(f)
	if err := runner.Add(counter, projection.AsAsync()); err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer runner.Close()

	const restarts = 3
	stopWriting := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the writer runs through every restart
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			write(t, m, i, 1)
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	for range restarts {
		waitPublished(t, r, r.Status().Published+50)
		e.stop()
		// Both sides show the outage while it lasts.
		deadline := time.Now().Add(waitLimit)
		for {
			relayDown := errors.Is(r.Status().Err, store.ErrUnavailable)
			st, err := runner.Status(context.Background())
			readerDown := errors.Is(err, store.ErrUnavailable) || (err == nil && st[0].State == projection.Unavailable)
			if relayDown && readerDown {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("outage not visible: relay %+v, runner %+v, %v", r.Status(), st, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("outage visible on both sides after %v", time.Since(deadline.Add(-waitLimit)))
		e.start()
	}
	waitPublished(t, r, r.Status().Published+50)
	close(stopWriting)
	wg.Wait()
	head, _ := m.Head(context.Background())
	waitPublished(t, r, head)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := runner.WaitFor(ctx, "", head); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, streamPositions(t, js, name), int(head))
	got := counter.seen()
	if len(got) != int(head) {
		t.Fatalf("the runner applied %d records, want %d", len(got), head)
	}
	for i, n := range got {
		if n != i {
			t.Fatalf("record %d applied as %d", i, n)
		}
	}
}

const childEnv = "NATSBUS_RELAY_CHILD"

// TestRelayChildProcess is the relay process of TestFaultRelayKilled; it
// does nothing unless started by it.
func TestRelayChildProcess(t *testing.T) {
	url := os.Getenv(childEnv)
	if url == "" {
		t.Skip("runs only as the child of TestFaultRelayKilled")
	}
	n, _ := strconv.Atoi(os.Getenv(childEnv + "_N"))
	stream := os.Getenv(childEnv + "_STREAM")
	_, js := connect(t, url)
	m := store.NewMemory()
	write(t, m, 0, n) // the same log in every incarnation
	r := natsbus.NewRelay(js, m, registry(t), natsbus.WithStream(stream), natsbus.WithSubjectPrefix("t."+stream), natsbus.WithWindow(256))
	_ = r.Run(context.Background()) // until killed
}

// A relay process SIGKILLed mid-batch, again and again, and restarted:
// the stream holds every position exactly once, in order.
func TestFaultRelayKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	e := startEmbedded(t)
	_, js := connect(t, e.url())
	name, _ := unique(t, js)
	const n = 8000
	s := func() uint64 {
		st, err := js.Stream(context.Background(), name)
		if err != nil {
			return 0
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return 0
		}
		return info.State.LastSeq
	}
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRelayChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+e.url(), childEnv+"_N="+strconv.Itoa(n), childEnv+"_STREAM="+name)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	kills := 0
	for target := uint64(1000); target < n; target += 1500 {
		cmd := child()
		deadline := time.Now().Add(waitLimit)
		for s() < target && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		kills++
		if got := s(); got >= n {
			t.Fatalf("the relay finished (%d messages) before kill %d: make n larger", got, kills)
		}
	}
	cmd := child()
	deadline := time.Now().Add(2 * waitLimit)
	for s() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	t.Logf("relay killed %d times mid-stream", kills)
	assertExactlyOnce(t, streamPositions(t, js, name), n)
}
