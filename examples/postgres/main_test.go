package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// The demo runs end to end on PostgreSQL: write side, log and checkpoints in
// the database, read models fed from its log.
func TestDemoOnPostgres(t *testing.T) {
	url := os.Getenv("CQRSKIT_POSTGRES_URL")
	if url == "" {
		t.Skip("CQRSKIT_POSTGRES_URL is not set; skipping the PostgreSQL demo")
	}
	schema := fmt.Sprintf("cqrskit_demotest_%d", time.Now().UnixNano())
	var out bytes.Buffer
	if err := run(context.Background(), &out, url, schema, 30, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"no event was written", "after WaitFor the async view shows $12.34", "still shows $215.00"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
