package natsbus_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/event/natsbus"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// fileCounter is an exactly-once counter view: it keeps its checkpoint, the
// number of records applied and the sum of their positions in one file,
// replaced atomically (write, fsync, rename) with every record.
type fileCounter struct {
	path       string
	pos        event.Position
	count, sum uint64
}

func (c *fileCounter) Name() string { return "counter" }

func loadCounter(path string) (*fileCounter, error) {
	c := &fileCounter{path: path}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	_, err = fmt.Sscan(string(b), &c.pos, &c.count, &c.sum)
	return c, err
}

func (c *fileCounter) LoadCheckpoint(context.Context) (projection.Checkpoint, error) {
	return projection.Checkpoint{Position: c.pos}, nil
}

func (c *fileCounter) Handle(_ context.Context, rec event.Record) error {
	if rec.Position <= c.pos {
		return nil
	}
	tmp := c.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(f, uint64(rec.Position), " ", c.count+1, " ", c.sum+uint64(rec.Position))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, c.path)
	}
	if err != nil {
		return err
	}
	c.pos, c.count, c.sum = rec.Position, c.count+1, c.sum+uint64(rec.Position)
	return nil
}

const readerEnv = "NATSBUS_READER_CHILD"

// TestReaderChildProcess is the read process of TestFaultReaderKilled; it
// does nothing unless started by it.
func TestReaderChildProcess(t *testing.T) {
	url := os.Getenv(readerEnv)
	if url == "" {
		t.Skip("runs only as the child of TestFaultReaderKilled")
	}
	stream := os.Getenv(readerEnv + "_STREAM")
	_, js := connect(t, url)
	c, err := loadCounter(os.Getenv(readerEnv + "_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	f := natsbus.NewFollower(js, registry(t), natsbus.WithStream(stream), natsbus.WithSubjectPrefix("t."+stream))
	r := projection.NewRunner(f, projection.WithBatchSize(16))
	if err := r.Add(c, projection.AsAsync()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {} // until killed
}

// A read process (Follower + Runner + a self-checkpointed counter view)
// SIGKILLed again and again and restarted resumes from its checkpoint: no
// record is applied twice or skipped.
func TestFaultReaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	e := startEmbedded(t)
	_, js := connect(t, e.url())
	reg := registry(t)
	name, opts := unique(t, js)
	m := store.NewMemory()
	r := natsbus.NewRelay(js, m, reg, opts...)
	running(t, r)
	const n = 1500
	waitPublished(t, r, write(t, m, 0, n))

	file := filepath.Join(t.TempDir(), "counter")
	progress := func() event.Position {
		c, err := loadCounter(file)
		if err != nil {
			t.Fatalf("counter file: %v", err)
		}
		return c.pos
	}
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestReaderChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), readerEnv+"="+e.url(), readerEnv+"_STREAM="+name, readerEnv+"_FILE="+file)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	kills := 0
	for target := event.Position(150); target < n; target += 250 {
		cmd := child()
		deadline := time.Now().Add(waitLimit)
		for progress() < target && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		kills++
		if p := progress(); p >= n {
			t.Fatalf("the reader finished before kill %d", kills)
		}
	}
	cmd := child()
	deadline := time.Now().Add(waitLimit)
	for progress() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	c, err := loadCounter(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.pos != n || c.count != n || c.sum != n*(n+1)/2 {
		t.Fatalf("after %d kills: checkpoint %v, %d applied, sum %d; want %d, %d, %d", kills, c.pos, c.count, c.sum, n, n, n*(n+1)/2)
	}
	t.Logf("reader killed %d times; every record applied exactly once", kills)
}
