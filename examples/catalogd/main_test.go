package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
)

// TestMain lets the end-to-end test run this test binary as a catalogd
// child process (CATALOGD_TEST_CHILD=1), so that it can SIGKILL it.
func TestMain(m *testing.M) {
	if os.Getenv("CATALOGD_TEST_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func TestNotBuiltFailsClearly(t *testing.T) {
	cases := []struct {
		cfg     Config
		feature string
		adapter string
	}{
		{Config{NATS: "nats://127.0.0.1:4222"}, "-nats", "event/natsbus"},
		{Config{Redis: "127.0.0.1:6379"}, "-redis", "readmodel/redisstore"},
		{Config{Role: RoleRelay, Postgres: "postgres://x"}, "-role relay", "event/natsbus"},
		{Config{Role: RoleProjector, Postgres: "postgres://x"}, "-role projector", "readmodel/redisstore"},
		{Config{Role: RoleReader, Postgres: "postgres://x", NATS: "nats://x"}, "-nats", "event/natsbus"},
	}
	for _, c := range cases {
		t.Run(c.feature, func(t *testing.T) {
			c.cfg.Addr = "127.0.0.1:0"
			srv, err := Start(context.Background(), c.cfg)
			if srv != nil {
				t.Fatal("Start returned a server")
			}
			var nb *NotBuiltError
			if !errors.Is(err, ErrNotBuilt) || !errors.As(err, &nb) || nb.Feature != c.feature || nb.Adapter != c.adapter {
				t.Fatalf("err = %v, want a NotBuiltError for %s / %s", err, c.feature, c.adapter)
			}
			if !strings.Contains(err.Error(), "not wired in this build") {
				t.Errorf("message %q", err)
			}
		})
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-redis", "127.0.0.1:6379"}, &out, &errOut); code != exitUsage {
		t.Fatalf("run -redis: exit %d", code)
	}
	if !strings.Contains(errOut.String(), "-redis requires the readmodel/redisstore adapter") || out.Len() != 0 {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Role: "primary"},
		{Role: RoleWriter},
		{Role: RoleReader},
		{Role: RoleReader, Postgres: "postgres://x", Seed: 10},
		{Seed: -1},
	} {
		cfg.Addr = "127.0.0.1:0"
		_, err := Start(context.Background(), cfg)
		var ce *ConfigError
		if !errors.Is(err, ErrConfig) || !errors.As(err, &ce) {
			t.Errorf("%+v: err = %v, want a ConfigError", cfg, err)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-role", "writer"}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "needs -postgres") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if code := run(context.Background(), []string{"-nosuchflag"}, &out, &errOut); code != exitUsage {
		t.Fatalf("unknown flag: exit %d", code)
	}
}

// client is a small HTTP client of the catalog API.
type client struct {
	t    testing.TB
	base string
}

// call sends a request and returns the status, the Cqrs-Position header
// and the body.
func (c client) call(method, path, body string, hdr ...string) (int, string, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(httpapi.PositionHeader), b
}

// write sends a command that must succeed and returns its token.
func (c client) write(method, path, body string, hdr ...string) string {
	c.t.Helper()
	code, tok, b := c.call(method, path, body, hdr...)
	if code != 200 && code != 201 {
		c.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	if tok == "" {
		c.t.Fatalf("%s %s: no %s header", method, path, httpapi.PositionHeader)
	}
	return tok
}

// product reads a product view that must exist.
func (c client) product(id string, hdr ...string) httpapi.ProductJSON {
	c.t.Helper()
	code, _, b := c.call("GET", "/v1/products/"+id, "", hdr...)
	if code != 200 {
		c.t.Fatalf("GET %s on %s: %d %s", id, c.base, code, b)
	}
	var p httpapi.ProductJSON
	if err := json.Unmarshal(b, &p); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func TestStartMemory(t *testing.T) {
	ctx := context.Background()
	srv, err := Start(ctx, Config{Addr: "127.0.0.1:0", Seed: 200})
	if err != nil {
		t.Fatal(err)
	}
	c := client{t: t, base: srv.URL()}
	p := c.product("p-199")
	if p.Seller.ID != "s-1" || p.ReviewCount != 1 || len(p.Shipping) == 0 {
		t.Fatalf("seeded product %+v", p)
	}
	tok := c.write("PUT", "/v1/products/p-199/price", `{"seller_id":"s-1","price_cents":4242}`, "If-Match", fmt.Sprintf(`"%d"`, p.Version))
	if got := c.product("p-199", httpapi.PositionHeader, tok); got.PriceCents != 4242 || got.Version != p.Version+1 {
		t.Fatalf("after the write: %+v", got)
	}
	if code, _, _ := c.call("GET", "/readyz", ""); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := <-srv.Done(); err != nil {
		t.Fatalf("Done: %v", err)
	}
	if _, err := http.Get(srv.URL() + "/healthz"); err == nil {
		t.Fatal("still serving after Shutdown")
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var servingRE = regexp.MustCompile(`serving (http://\S+)`)

// waitURL waits for the "serving URL" line catalogd prints.
func waitURL(t testing.TB, out *syncBuffer, errOut fmt.Stringer) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingRE.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("catalogd did not start; stderr:\n%s", errOut)
	return ""
}

// TestRunStopsOnSignal runs the command as main does and cancels its
// context, as SIGINT/SIGTERM do: it shuts down and exits 0.
func TestRunStopsOnSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-log-level", "warn"}, &out, &errOut) }()
	c := client{t: t, base: waitURL(t, &out, &errOut)}
	if code, _, _ := c.call("GET", "/healthz", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d; stderr %s", code, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after the signal")
	}
}
