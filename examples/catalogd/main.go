package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2 // bad or contradictory flags
)

// run is main without the process: it parses args, starts the server,
// prints its URL on stdout and serves until ctx ends, then shuts down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("catalogd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var role, level string
	var shutdown time.Duration
	var gcPercent, memLimitMiB int
	fs.StringVar(&cfg.Addr, "addr", ":8080", "listen address")
	fs.StringVar(&role, "role", string(RoleAll), "role: "+joinRoles())
	fs.StringVar(&cfg.Postgres, "postgres", "", "PostgreSQL URL of the write side and log (empty with role all: the in-memory store)")
	fs.StringVar(&cfg.Schema, "schema", "", "PostgreSQL schema (default cqrskit)")
	fs.StringVar(&cfg.NATS, "nats", "", "NATS URL: role relay publishes the -postgres log to JetStream; roles reader and projector follow the stream")
	fs.StringVar(&cfg.Stream, "stream", DefaultStream, "JetStream stream name")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis address (host:port or redis:// URL): role projector keeps the views there; role reader serves them")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", DefaultRedisPrefix, "key prefix of the views and lease in Redis")
	fs.StringVar(&cfg.Owner, "owner", "", "this projector's name in its lease (default host/pid/random)")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", 0, "projector lease time: a standby takes over within it after the owner dies (default 5s)")
	fs.IntVar(&cfg.Seed, "seed", 0, "list this many generated products before serving (roles all and writer)")
	fs.DurationVar(&cfg.ConsistencyTimeout, "consistency-timeout", 2*time.Second, "longest read-your-writes wait before 503")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body", 64<<10, "largest request body in bytes")
	fs.DurationVar(&shutdown, "shutdown-timeout", 10*time.Second, "how long requests in flight may take to finish on SIGINT/SIGTERM")
	fs.StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&cfg.NaiveJoin, "naive-join", "", "PostgreSQL URL: answer GET product with the seed's 5-table JOIN there instead of the view (the baseline of load.sh; role all)")
	fs.IntVar(&gcPercent, "gc-percent", 0, "garbage collector target percentage, as GOGC (0: keep GOGC or the runtime default of 100); a larger value means fewer collections of the large, stable view heap and a shorter read tail, for more memory")
	fs.IntVar(&memLimitMiB, "memory-limit-mib", 0, "soft memory limit in MiB, as GOMEMLIMIT (0: keep GOMEMLIMIT or none); set it with a large -gc-percent so the heap cannot outgrow the machine")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "catalogd: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if gcPercent < 0 || memLimitMiB < 0 {
		fmt.Fprintln(stderr, "catalogd: -gc-percent and -memory-limit-mib must not be negative")
		return exitUsage
	}
	// The GC settings are process-wide; they are applied only when asked
	// for, so an embedding test that calls run leaves the runtime alone.
	if gcPercent > 0 {
		debug.SetGCPercent(gcPercent)
	}
	if memLimitMiB > 0 {
		debug.SetMemoryLimit(int64(memLimitMiB) << 20)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(stderr, "catalogd: -log-level: %v\n", err)
		return exitUsage
	}
	cfg.Role = Role(role)
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	srv, err := Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		if errors.Is(err, ErrConfig) {
			return exitUsage
		}
		return exitFailed
	}
	fmt.Fprintf(stdout, "catalogd: role %s serving %s\n", cfg.Role, srv.URL())
	code := exitOK
	select {
	case <-ctx.Done():
	case err := <-srv.Done():
		cfg.Logger.Error("catalogd: serve failed", "err", err)
		code = exitFailed
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		cfg.Logger.Error("catalogd: shutdown", "err", err)
		code = exitFailed
	}
	return code
}

func joinRoles() string {
	s := make([]string, len(Roles))
	for i, r := range Roles {
		s[i] = string(r)
	}
	return strings.Join(s, " | ")
}
