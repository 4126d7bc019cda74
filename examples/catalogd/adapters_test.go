package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
)

// natsStream returns CQRSKIT_NATS_URL and a fresh stream name, deleted when
// the test ends, or skips the test.
func natsStream(t *testing.T) (url, stream string) {
	t.Helper()
	url = os.Getenv("CQRSKIT_NATS_URL")
	if url == "" {
		t.Skip("CQRSKIT_NATS_URL not set; e.g. nats://127.0.0.1:4222 (JetStream enabled)")
	}
	stream = fmt.Sprintf("CATALOGD_TEST_%d_%d", time.Now().UnixNano(), rand.IntN(1<<30))
	t.Cleanup(func() {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Errorf("delete stream: %v", err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Errorf("delete stream: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, stream); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Errorf("delete stream %s: %v", stream, err)
		}
	})
	return url, stream
}

// redisPrefix returns CQRSKIT_REDIS_ADDR and a fresh key prefix, whose
// keys are deleted when the test ends, or skips the test.
func redisPrefix(t *testing.T) (addr, prefix string) {
	t.Helper()
	addr = os.Getenv("CQRSKIT_REDIS_ADDR")
	if addr == "" {
		t.Skip("CQRSKIT_REDIS_ADDR not set; e.g. 127.0.0.1:6379")
	}
	prefix = fmt.Sprintf("catalogd_test_%d_%d", time.Now().UnixNano(), rand.IntN(1<<30))
	t.Cleanup(func() {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("delete keys %s:*: %v", prefix, err)
		}
	})
	return addr, prefix
}

// startServer runs catalogd in process with cfg until the test ends.
func startServer(t *testing.T, cfg Config) (*Server, client) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start %s: %v", cfg.Role, err)
	}
	t.Cleanup(func() { shutdown(t, srv) })
	return srv, client{t: t, base: srv.URL()}
}

func shutdown(t *testing.T, srv *Server) {
	// The client's spare connections (dialled for concurrent requests,
	// never used) are new connections to the server, which Shutdown
	// waits up to 5 s for: close them first.
	http.DefaultClient.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// status reads /v1/status.
func (c client) status() []httpapi.StatusJSON {
	c.t.Helper()
	code, _, b := c.call("GET", "/v1/status", "")
	if code != 200 {
		c.t.Fatalf("status: %d %s", code, b)
	}
	var s struct{ Projections []httpapi.StatusJSON }
	if err := json.Unmarshal(b, &s); err != nil {
		c.t.Fatal(err)
	}
	return s.Projections
}

// readYourWrites sends a few writes to the writer and reads each back with
// its token from the reader, which must show exactly that write.
func readYourWrites(t *testing.T, writer, reader client, product string, from int) string {
	t.Helper()
	var tok string
	for i := range 5 {
		price := from + i
		tok = writer.write("PUT", "/v1/products/"+product+"/price", fmt.Sprintf(`{"seller_id":"s1","price_cents":%d}`, price))
		if p := reader.product(product, httpapi.PositionHeader, tok); p.PriceCents != int64(price) {
			t.Fatalf("reader %s after token %s: price %d, want %d", reader.base, tok, p.PriceCents, price)
		}
	}
	return tok
}

// TestRelayAndNATSReader: writer on PostgreSQL, a relay into JetStream and
// a reader following the stream (no PostgreSQL): a read sent with a
// write's token sees the write, since the follower's positions are the
// PostgreSQL log's. With Redis too, a projector fed by the stream keeps
// the views in Redis for a stateless reader.
func TestRelayAndNATSReader(t *testing.T) {
	pg := postgresURL(t)
	schema := testSchema(t, pg)
	nurl, stream := natsStream(t)
	_, writer := startServer(t, Config{Role: RoleWriter, Postgres: pg, Schema: schema})
	writer.write("POST", "/v1/sellers", `{"seller_id":"s1","name":"Acme","rating":4}`)
	tok := writer.write("POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"Lamp","price_cents":1000,"stock":5}`)

	_, relay := startServer(t, Config{Role: RoleRelay, Postgres: pg, Schema: schema, NATS: nurl, Stream: stream})
	_, reader := startServer(t, Config{Role: RoleReader, NATS: nurl, Stream: stream})
	if p := reader.product("p1", httpapi.PositionHeader, tok); p.Title != "Lamp" || p.Seller.Name != "Acme" || p.Version != 1 {
		t.Fatalf("NATS reader: %+v", p)
	}
	last := readYourWrites(t, writer, reader, "p1", 2000)
	if code, _, b := reader.call("POST", "/v1/sellers", `{"seller_id":"s2","name":"B","rating":1}`); code != 421 {
		t.Fatalf("write on the NATS reader: %d %s", code, b)
	}
	if code, _, b := relay.call("GET", "/v1/products/p1", ""); code != 421 {
		t.Fatalf("query on the relay: %d %s", code, b)
	}
	lastPos, _ := strconv.ParseUint(last, 10, 64)
	st := relay.status()
	if len(st) != 1 || st[0].Name != "relay:"+stream || uint64(st[0].Checkpoint) < lastPos {
		t.Fatalf("relay status %+v, want relay:%s at %d or later", st, stream, lastPos)
	}
	if code, _, b := relay.call("GET", "/readyz", ""); code != 200 {
		t.Fatalf("relay readyz: %d %s", code, b)
	}

	// A token beyond anything written: bounded wait, then 503 + Retry-After.
	_, slow := startServer(t, Config{Role: RoleReader, NATS: nurl, Stream: stream, ConsistencyTimeout: 100 * time.Millisecond})
	notReached(t, slow, lastPos+1000)

	if os.Getenv("CQRSKIT_REDIS_ADDR") == "" {
		t.Log("CQRSKIT_REDIS_ADDR not set: the projector fed by the stream is not tested")
		return
	}
	raddr, prefix := redisPrefix(t)
	startServer(t, Config{Role: RoleProjector, NATS: nurl, Stream: stream, Redis: raddr, RedisPrefix: prefix})
	_, rreader := startServer(t, Config{Role: RoleReader, Redis: raddr, RedisPrefix: prefix})
	if p := rreader.product("p1", httpapi.PositionHeader, last); p.PriceCents != 2004 || p.Seller.Name != "Acme" {
		t.Fatalf("Redis reader fed from the stream: %+v", p)
	}
	readYourWrites(t, writer, rreader, "p1", 3000)
}

// notReached sends a query with a token the views cannot reach: 503 with
// Retry-After, a problem document, after the bounded wait.
func notReached(t *testing.T, c client, pos uint64) {
	t.Helper()
	req, err := http.NewRequest("GET", c.base+"/v1/products/p1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(httpapi.PositionHeader, strconv.FormatUint(pos, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p httpapi.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/problem+json" || p.Status != 503 {
		t.Fatalf("unreachable token on %s: %d %v %+v", c.base, resp.StatusCode, resp.Header, p)
	}
}

// TestRedisProjectorsAndReader: writer on PostgreSQL, two projector
// processes feeding Redis under one lease (one applies, the other stands
// by, both say who owns it), and a stateless reader serving from Redis
// whose read-your-writes waits for the projector's checkpoint in Redis.
// Stopping the owner hands the lease to the standby, and reads with the
// tokens of later writes still see them.
func TestRedisProjectorsAndReader(t *testing.T) {
	pg := postgresURL(t)
	schema := testSchema(t, pg)
	raddr, prefix := redisPrefix(t)
	_, writer := startServer(t, Config{Role: RoleWriter, Postgres: pg, Schema: schema})
	writer.write("POST", "/v1/sellers", `{"seller_id":"s1","name":"Acme","rating":4}`)
	writer.write("POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"Lamp","price_cents":1000,"stock":5}`)

	proj := func(owner string) (*Server, client) {
		return startServer(t, Config{Role: RoleProjector, Postgres: pg, Schema: schema, Redis: raddr, RedisPrefix: prefix, Owner: owner, LeaseTTL: 2 * time.Second})
	}
	srvA, a := proj("proj-a")
	srvB, b := proj("proj-b")
	_, reader := startServer(t, Config{Role: RoleReader, Redis: raddr, RedisPrefix: prefix, ConsistencyTimeout: 3 * time.Second})
	readYourWrites(t, writer, reader, "p1", 2000)

	// Concurrent clients, each reading its own write back with its token
	// (the reader shares its checkpoint reads between them).
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			id := fmt.Sprintf("c%d", i)
			tok := writer.write("POST", "/v1/products", fmt.Sprintf(`{"product_id":%q,"seller_id":"s1","title":"T","price_cents":1,"stock":1}`, id))
			for j := range 5 {
				if p := reader.product(id, httpapi.PositionHeader, tok); p.Version != uint64(1+j) || p.PriceCents != int64(1+j*100) {
					t.Errorf("client %d round %d: %+v", i, j, p)
					return
				}
				tok = writer.write("PUT", "/v1/products/"+id+"/price", fmt.Sprintf(`{"seller_id":"s1","price_cents":%d}`, 1+(j+1)*100))
			}
		})
	}
	wg.Wait()

	// One owner; both processes (and the reader) name it; the other stands by.
	owner := waitOwner(t, a, b)
	if rs := reader.status(); len(rs) != 1 || rs[0].Owner != owner || !rs[0].Leased {
		t.Fatalf("reader status %+v, want owner %s", rs, owner)
	}
	for _, c := range []client{a, b} {
		if code, _, body := c.call("GET", "/readyz", ""); code != 200 {
			t.Fatalf("projector %s readyz: %d %s", c.base, code, body)
		}
	}
	if code, _, body := reader.call("GET", "/v1/products/p1", ""); code != 200 || !strings.Contains(string(body), `"price_cents":2004`) {
		t.Fatalf("reader without token: %d %s", code, body)
	}

	// The owner stops (releasing its lease): the standby takes over and
	// reads with the tokens of later writes still see them.
	stop, standby, next := srvA, b, "proj-b"
	if owner == "proj-b" {
		stop, standby, next = srvB, a, "proj-a"
	}
	shutdown(t, stop)
	readYourWrites(t, writer, reader, "p1", 3000)
	if st := standby.status(); len(st) != 1 || st[0].State != "running" || st[0].Owner != next {
		t.Fatalf("after the owner stopped: %+v", st)
	}

	_, slow := startServer(t, Config{Role: RoleReader, Redis: raddr, RedisPrefix: prefix, ConsistencyTimeout: 100 * time.Millisecond})
	notReached(t, slow, 1<<40)
}

// waitOwner waits until the two projector processes agree on the lease
// holder, one of them, running in its own process and standing by in the
// other, and returns it.
func waitOwner(t *testing.T, a, b client) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sa, sb := a.status(), b.status()
		if len(sa) != 1 || len(sb) != 1 {
			t.Fatalf("status %+v %+v: want one projector each", sa, sb)
		}
		owner := sa[0].Owner
		states := sa[0].State + "/" + sb[0].State
		if owner != "" && owner == sb[0].Owner && sa[0].Leased && sb[0].Leased && sa[0].Name == "catalog.views" &&
			(owner == "proj-a" && states == "running/standby" || owner == "proj-b" && states == "standby/running") {
			return owner
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single owner: %+v / %+v", sa[0], sb[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProjectorKilled: two projector processes; the owner is killed with
// SIGKILL (its lease is not released). The standby takes over once the
// lease lapses (-lease-ttl 1s), resumes from the checkpoint in Redis, and
// the Redis reader answers the tokens of the writes made meanwhile, with
// every write applied exactly once (review count, version).
func TestProjectorKilled(t *testing.T) {
	pg := postgresURL(t)
	schema := testSchema(t, pg)
	raddr, prefix := redisPrefix(t)
	_, writer := startServer(t, Config{Role: RoleWriter, Postgres: pg, Schema: schema})
	writer.write("POST", "/v1/sellers", `{"seller_id":"s1","name":"Acme","rating":4}`)
	writer.write("POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"Lamp","price_cents":1000,"stock":5}`)
	args := func(owner string) []string {
		return []string{"-role", "projector", "-postgres", pg, "-schema", schema, "-redis", raddr, "-redis-prefix", prefix, "-owner", owner, "-lease-ttl", "1s"}
	}
	procs := map[string]*child{"proj-a": startChild(t, args("proj-a")...), "proj-b": startChild(t, args("proj-b")...)}
	_, reader := startServer(t, Config{Role: RoleReader, Redis: raddr, RedisPrefix: prefix, ConsistencyTimeout: 5 * time.Second})
	readYourWrites(t, writer, reader, "p1", 2000)
	owner := waitOwner(t, procs["proj-a"].client, procs["proj-b"].client)
	next := map[string]string{"proj-a": "proj-b", "proj-b": "proj-a"}[owner]

	procs[owner].kill()
	var tok string
	for i := range 10 {
		tok = writer.write("POST", "/v1/products/p1/reviews", fmt.Sprintf(`{"review_id":"r%d","author":"a","rating":5}`, i))
	}
	p := reader.product("p1", httpapi.PositionHeader, tok)
	if p.ReviewCount != 10 || p.Version != 1+5+10 || p.PriceCents != 2004 {
		t.Fatalf("after the failover: %+v", p)
	}
	if st := procs[next].status(); len(st) != 1 || st[0].State != "running" || st[0].Owner != next || st[0].Epoch < 2 {
		t.Fatalf("standby after the owner's death: %+v", st)
	}
}

// TestRelayKilled: two relay processes on one stream (the stream fences
// them, so both may run); one is killed with SIGKILL mid-traffic, the
// other goes on publishing, and a NATS reader answers every token with
// the write applied exactly once. A relay restarted later resumes from
// the stream's tail without repeating anything.
func TestRelayKilled(t *testing.T) {
	pg := postgresURL(t)
	schema := testSchema(t, pg)
	nurl, stream := natsStream(t)
	_, writer := startServer(t, Config{Role: RoleWriter, Postgres: pg, Schema: schema})
	writer.write("POST", "/v1/sellers", `{"seller_id":"s1","name":"Acme","rating":4}`)
	writer.write("POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"Lamp","price_cents":1000,"stock":5}`)
	args := []string{"-role", "relay", "-postgres", pg, "-schema", schema, "-nats", nurl, "-stream", stream}
	a, b := startChild(t, args...), startChild(t, args...)
	_, reader := startServer(t, Config{Role: RoleReader, NATS: nurl, Stream: stream, ConsistencyTimeout: 5 * time.Second})
	readYourWrites(t, writer, reader, "p1", 2000)

	review := func(i int) string {
		return writer.write("POST", "/v1/products/p1/reviews", fmt.Sprintf(`{"review_id":"r%d","author":"a","rating":5}`, i))
	}
	for i := range 5 {
		review(i)
	}
	a.kill()
	var tok string
	for i := 5; i < 15; i++ {
		tok = review(i)
	}
	if p := reader.product("p1", httpapi.PositionHeader, tok); p.ReviewCount != 15 || p.Version != 1+5+15 {
		t.Fatalf("after a relay was killed: %+v", p)
	}
	b.kill()
	tok = review(15)
	startChild(t, args...)
	if p := reader.product("p1", httpapi.PositionHeader, tok); p.ReviewCount != 16 || p.Version != 1+5+16 {
		t.Fatalf("after a relay restarted: %+v", p)
	}
}

// TestRelayStreamSubjects: each stream's relay publishes under its own
// subjects, so a stream another catalog (or an earlier run) left on the
// server on the default subjects does not stop a new one; and a relay
// refuses, with a *ConfigError, a stream that exists on subjects it does
// not publish to (every publish would fail).
func TestRelayStreamSubjects(t *testing.T) {
	pg := postgresURL(t)
	schema := testSchema(t, pg)
	nurl, other := natsStream(t)
	_, stream := natsStream(t)
	nc, err := nats.Connect(nurl)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A stream on subjects no relay of this test uses: the default prefix's
	// would overlap any other stream made with it, as would a test's.
	foreign := fmt.Sprintf("foreign_%d", rand.IntN(1<<30))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: other, Subjects: []string{foreign + ".>"}}); err != nil {
		t.Fatal(err)
	}
	_, err = Start(ctx, Config{Addr: "127.0.0.1:0", Role: RoleRelay, Postgres: pg, Schema: schema, NATS: nurl, Stream: other})
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), foreign) {
		t.Fatalf("relay on a stream with other subjects: got %v, want a *ConfigError naming them", err)
	}

	_, writer := startServer(t, Config{Role: RoleWriter, Postgres: pg, Schema: schema})
	writer.write("POST", "/v1/sellers", `{"seller_id":"s1","name":"Acme","rating":4}`)
	startServer(t, Config{Role: RoleRelay, Postgres: pg, Schema: schema, NATS: nurl, Stream: stream})
	_, reader := startServer(t, Config{Role: RoleReader, NATS: nurl, Stream: stream})
	tok := writer.write("POST", "/v1/products", `{"product_id":"p1","seller_id":"s1","title":"Lamp","price_cents":1000,"stock":5}`)
	if p := reader.product("p1", httpapi.PositionHeader, tok); p.Title != "Lamp" {
		t.Fatalf("reader: %+v", p)
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.CachedInfo().Config.Subjects, []string{SubjectPrefix(stream) + ".>"}; !slices.Equal(got, want) {
		t.Fatalf("stream subjects %v, want %v", got, want)
	}
}
