package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
)

// postgresURL returns CQRSKIT_POSTGRES_URL or skips the test.
func postgresURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("CQRSKIT_POSTGRES_URL")
	if url == "" {
		t.Skip("CQRSKIT_POSTGRES_URL not set; e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	return url
}

// testSchema returns a fresh schema name, dropped when the test ends.
func testSchema(t *testing.T, url string) string {
	t.Helper()
	schema := fmt.Sprintf("catalogd_test_%d_%d", time.Now().UnixNano(), rand.IntN(1<<30))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return schema
}

// child is catalogd running as a separate process (this test binary, see
// TestMain).
type child struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	errOut *syncBuffer
	client
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-addr", "127.0.0.1:0", "-log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), "CATALOGD_TEST_CHILD=1")
	c := &child{cmd: cmd, out: &syncBuffer{}, errOut: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = c.out, c.errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.kill() })
	c.client = client{t: t, base: waitURL(t, c.out, c.errOut)}
	return c
}

// kill sends SIGKILL: no shutdown, no flush.
func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}
}

// TestWriterAndReaders runs one writer and two readers as processes on one
// PostgreSQL schema: a read sent to either reader with a write's token sees
// the write; reads and writes sent to the wrong role get 421; a reader
// killed with SIGKILL and restarted rebuilds its views and catches up
// while the other keeps serving.
func TestWriterAndReaders(t *testing.T) {
	url := postgresURL(t)
	schema := testSchema(t, url)
	pg := []string{"-postgres", url, "-schema", schema}
	writer := startChild(t, append(pg, "-role", "writer")...)
	readers := []*child{startChild(t, append(pg, "-role", "reader")...), startChild(t, append(pg, "-role", "reader")...)}

	writer.write("POST", "/v1/sellers", `{"seller_id":"s1","name":"Acme","rating":4}`)
	tok := writer.write("POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"Lamp","price_cents":1000,"stock":5}`)
	for i, r := range readers {
		if p := r.product("p1", httpapi.PositionHeader, tok); p.Title != "Lamp" || p.Seller.Name != "Acme" || p.Version != 1 {
			t.Fatalf("reader %d: %+v", i, p)
		}
	}
	if code, _, _ := writer.call("GET", "/v1/products/p1", ""); code != 421 {
		t.Fatalf("read on the writer: %d, want 421", code)
	}
	if code, _, _ := readers[0].call("POST", "/v1/products/p1/reservations", `{"quantity":1}`); code != 421 {
		t.Fatalf("write on a reader: %d, want 421", code)
	}

	// Every read carrying the token of the write just made sees exactly
	// that write, whichever reader answers (no other writer runs).
	for i := range 20 {
		tok := writer.write("PUT", "/v1/products/p1/price", fmt.Sprintf(`{"seller_id":"s1","price_cents":%d}`, 2000+i))
		if p := readers[i%2].product("p1", httpapi.PositionHeader, tok); p.PriceCents != int64(2000+i) {
			t.Fatalf("round %d: reader %d shows price %d after the write's token", i, i%2, p.PriceCents)
		}
	}

	// SIGKILL reader 0; writes go on; reader 1 keeps serving them.
	readers[0].kill()
	for i := range 10 {
		tok = writer.write("PUT", "/v1/products/p1/stock", fmt.Sprintf(`{"seller_id":"s1","stock":%d}`, 10+i))
		if p := readers[1].product("p1", httpapi.PositionHeader, tok); p.Stock != 10+i {
			t.Fatalf("surviving reader: stock %d, want %d", p.Stock, 10+i)
		}
	}
	// Restarted, it rebuilds from the log and answers the latest token.
	restarted := startChild(t, append(pg, "-role", "reader")...)
	p := restarted.product("p1", httpapi.PositionHeader, tok)
	if p.Stock != 19 || p.PriceCents != 2019 || p.Version != 31 {
		t.Fatalf("restarted reader: %+v", p)
	}
	if code, _, b := restarted.call("GET", "/readyz", ""); code != 200 {
		t.Fatalf("restarted reader not ready: %d %s", code, b)
	}

	// The If-Match round trip across processes: the ETag a reader serves
	// is the version the writer checks.
	code, _, b := writer.call("PUT", "/v1/products/p1/price", `{"seller_id":"s1","price_cents":1}`, "If-Match", `"30"`)
	if code != 412 {
		t.Fatalf("stale If-Match on the writer: %d %s", code, b)
	}
	writer.write("PUT", "/v1/products/p1/price", `{"seller_id":"s1","price_cents":1}`, "If-Match", httpapi.ETag(p.Version))

	// Graceful stop on SIGTERM: exit status 0.
	if err := writer.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := writer.cmd.Wait(); err != nil {
		t.Fatalf("writer after SIGTERM: %v; stderr %s", err, writer.errOut.String())
	}
}

// TestAllOnPostgres runs the single-process role on PostgreSQL in process:
// views are fed inline, so a read after a write sees it without a token.
func TestAllOnPostgres(t *testing.T) {
	url := postgresURL(t)
	schema := testSchema(t, url)
	ctx := context.Background()
	srv, err := Start(ctx, Config{Addr: "127.0.0.1:0", Postgres: url, Schema: schema, Seed: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	c := client{t: t, base: srv.URL()}
	c.write("PUT", "/v1/products/p-3/details", `{"seller_id":"s-0","title":"Renamed","description":""}`)
	if p := c.product("p-3"); p.Title != "Renamed" {
		t.Fatalf("product %+v", p)
	}
	// A second process on the same schema seeding again skips what exists.
	srv2, err := Start(ctx, Config{Addr: "127.0.0.1:0", Postgres: url, Schema: schema, Seed: 20, Role: RoleWriter})
	if err != nil {
		t.Fatal(err)
	}
	srv2.Shutdown(ctx)
}

// TestWriterKilledMidCommand SIGKILLs the writer while clients are sending
// reviews. A review the client was told succeeded (201) is in the reader's
// view; one whose answer was lost either committed whole or not at all:
// sent again after the restart it is refused as already there (409) or
// created now (201), and in the end every product counts exactly the
// reviews with distinct IDs that were sent.
func TestWriterKilledMidCommand(t *testing.T) {
	url := postgresURL(t)
	schema := testSchema(t, url)
	pg := []string{"-postgres", url, "-schema", schema}
	writer := startChild(t, append(pg, "-role", "writer")...)
	reader := startChild(t, append(pg, "-role", "reader")...)
	const products, clients = 4, 8
	writer.write("POST", "/v1/sellers", `{"seller_id":"s1","name":"Acme","rating":4}`)
	for i := range products {
		writer.write("POST", "/v1/products", fmt.Sprintf(`{"product_id":"p%d","seller_id":"s1","title":"T","price_cents":100,"stock":1}`, i))
	}

	type outcome struct {
		id      string
		product int
		code    int // 0: no answer
		token   string
	}
	results := make(chan outcome, 1<<16)
	stop := make(chan struct{})
	hc := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				o := outcome{id: fmt.Sprintf("r-%d-%d", c, n), product: (c + n) % products}
				body := fmt.Sprintf(`{"review_id":%q,"author":"a","rating":4}`, o.id)
				resp, err := hc.Post(writer.base+fmt.Sprintf("/v1/products/p%d/reviews", o.product), "application/json", strings.NewReader(body))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					o.code, o.token = resp.StatusCode, resp.Header.Get(httpapi.PositionHeader)
				}
				results <- o
				if err != nil {
					return // the writer is gone
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	writer.kill()
	close(stop)
	wg.Wait()
	close(results)

	writer = startChild(t, append(pg, "-role", "writer")...)
	want := make([]int, products)
	var last string
	var ok, lost int
	var lostOnes []outcome
	for o := range results {
		switch o.code {
		case 201:
			ok++
			want[o.product]++
			last = maxToken(last, o.token)
		case 0:
			lost++
			lostOnes = append(lostOnes, o)
		default:
			t.Fatalf("review %s: status %d", o.id, o.code)
		}
	}
	if ok == 0 {
		t.Fatal("no review succeeded before the kill")
	}
	// What the client was told succeeded is in the view.
	for i := range products {
		if p := reader.product(fmt.Sprintf("p%d", i), httpapi.PositionHeader, last); p.ReviewCount < want[i] {
			t.Fatalf("p%d: %d reviews in the view, %d were acknowledged", i, p.ReviewCount, want[i])
		}
	}
	// A lost answer: the review committed whole (409 now) or not at all
	// (201 now).
	for _, o := range lostOnes {
		code, tok, b := writer.call("POST", fmt.Sprintf("/v1/products/p%d/reviews", o.product), fmt.Sprintf(`{"review_id":%q,"author":"a","rating":4}`, o.id))
		if code != 201 && code != 409 {
			t.Fatalf("resending %s: %d %s", o.id, code, b)
		}
		want[o.product]++
		if tok != "" {
			last = maxToken(last, tok)
		}
	}
	last = maxToken(last, writer.write("PUT", "/v1/sellers/s1/name", `{"name":"After"}`))
	for i := range products {
		if p := reader.product(fmt.Sprintf("p%d", i), httpapi.PositionHeader, last); p.ReviewCount != want[i] {
			t.Fatalf("p%d: %d reviews in the view, want %d distinct IDs sent", i, p.ReviewCount, want[i])
		}
	}
	t.Logf("%d acknowledged, %d answers lost to the kill", ok, lost)
}

// maxToken returns the later of two position tokens ("" is the earliest).
func maxToken(a, b string) string {
	pa, _ := strconv.ParseUint(a, 10, 64)
	pb, _ := strconv.ParseUint(b, 10, 64)
	if pb > pa {
		return b
	}
	return a
}
