package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/cqrskit/cqrs/readmodel/redisstore"
	"github.com/redis/go-redis/v9"
)

// addr returns the shared Redis server's address, or skips the test.
func addr(t testing.TB) string {
	t.Helper()
	a := os.Getenv("CQRSKIT_REDIS_ADDR")
	if a == "" {
		t.Skip("CQRSKIT_REDIS_ADDR is not set: no Redis server to test against")
	}
	return a
}

// client returns a client of the shared server, closed at cleanup.
func client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr(t)})
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix returns a random key prefix whose keys are deleted at
// cleanup, so tests and reruns never share keys.
func testPrefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	p := "cqrskit-test-" + hex.EncodeToString(b)
	t.Cleanup(func() { deleteKeys(context.Background(), c, p+":*") })
	return p
}

func deleteKeys(ctx context.Context, c redis.UniversalClient, pattern string) {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return
		}
		if len(keys) > 0 {
			c.Unlink(ctx, keys...)
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// namespace returns a fresh namespace for projector name.
func namespace(t testing.TB, c redis.UniversalClient, name string) *redisstore.Namespace {
	t.Helper()
	ns, err := redisstore.NewNamespace(c, testPrefix(t, c), name)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}
