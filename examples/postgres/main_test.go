package main

import (
	"context"
	"fmt"
	"os"
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
	if err := run(context.Background(), url, schema, 30, false); err != nil {
		t.Fatal(err)
	}
}
