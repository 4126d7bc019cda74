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

// TestConfigErrors: every contradictory or incomplete combination of role
// and adapters is refused before anything is opened, with a *ConfigError
// saying why (exit status 2 from the command).
func TestConfigErrors(t *testing.T) {
	const pg, nt, rd = "postgres://x", "nats://127.0.0.1:1", "127.0.0.1:1"
	for _, c := range []struct {
		cfg    Config
		reason string
	}{
		{Config{Role: "primary"}, "unknown role"},
		{Config{Role: RoleWriter}, "needs -postgres"},
		{Config{Role: RoleReader}, "needs -postgres or -nats"},
		{Config{Role: RoleReader, Postgres: pg, Seed: 10}, "-seed needs a role that writes"},
		{Config{Seed: -1}, "must not be negative"},
		{Config{NATS: nt}, "role all keeps the views in process"},
		{Config{Redis: rd}, "role all keeps the views in process"},
		{Config{Role: RoleWriter, Postgres: pg, NATS: nt}, "-role writer uses only -postgres"},
		{Config{Role: RoleRelay, Postgres: pg}, "needs both"},
		{Config{Role: RoleRelay, NATS: nt}, "needs both"},
		{Config{Role: RoleRelay, Postgres: pg, NATS: nt, Redis: rd}, "does not use -redis"},
		{Config{Role: RoleProjector, Postgres: pg}, "needs -redis"},
		{Config{Role: RoleProjector, Redis: rd}, "exactly one"},
		{Config{Role: RoleProjector, Redis: rd, Postgres: pg, NATS: nt}, "exactly one"},
		{Config{Role: RoleReader, NATS: nt, Redis: rd}, "not both"},
		{Config{Role: RoleReader, NATS: nt, Postgres: pg}, "follows one log"},
		{Config{Role: RoleReader, Redis: rd, Postgres: pg}, "drop -postgres"},
		{Config{Role: RoleWriter, Postgres: pg, NaiveJoin: pg}, "-naive-join is a mode of role all"},
		{Config{Role: RoleProjector, Redis: rd, Postgres: pg, LeaseTTL: -1}, "-lease-ttl"},
	} {
		c.cfg.Addr = "127.0.0.1:0"
		srv, err := Start(context.Background(), c.cfg)
		var ce *ConfigError
		if srv != nil || !errors.Is(err, ErrConfig) || !errors.As(err, &ce) || !strings.Contains(ce.Reason, c.reason) {
			t.Errorf("%+v: err = %v, want a ConfigError saying %q", c.cfg, err, c.reason)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-role", "writer"}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "needs -postgres") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-role", "relay", "-nats", nt}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "-role relay publishes the -postgres log to -nats") || out.Len() != 0 {
		t.Fatalf("relay without -postgres: exit %d, stdout %q stderr %q", code, out.String(), errOut.String())
	}
	if code := run(context.Background(), []string{"-nosuchflag"}, &out, &errOut); code != exitUsage {
		t.Fatalf("unknown flag: exit %d", code)
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"-gc-percent", "-5"}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "must not be negative") {
		t.Fatalf("negative -gc-percent: exit %d, stderr %q", code, errOut.String())
	}
}

// TestUnreachableAdapters: a NATS or Redis that does not answer fails
// Start with an error naming it (not a ConfigError: the flags are fine).
func TestUnreachableAdapters(t *testing.T) {
	for _, cfg := range []Config{
		{Role: RoleReader, NATS: "nats://127.0.0.1:1"},
		{Role: RoleReader, Redis: "127.0.0.1:1"},
	} {
		cfg.Addr = "127.0.0.1:0"
		srv, err := Start(context.Background(), cfg)
		if srv != nil || err == nil || errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("%+v: err = %v", cfg, err)
		}
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
