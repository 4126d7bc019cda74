package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// Role is what a process does in the topology.
type Role string

// Roles.
const (
	// RoleAll: write side and views in one process (the default).
	RoleAll Role = "all"
	// RoleWriter: commands only; queries answer 421 Misdirected Request.
	RoleWriter Role = "writer"
	// RoleReader: follows the log into in-memory views; writes answer 421.
	RoleReader Role = "reader"
	// RoleProjector: feeds views kept outside the process (Redis). Not
	// built yet.
	RoleProjector Role = "projector"
	// RoleRelay: publishes the PostgreSQL log to NATS JetStream. Not built
	// yet.
	RoleRelay Role = "relay"
)

// Roles lists every role, in the order the usage text gives them.
var Roles = []Role{RoleAll, RoleWriter, RoleReader, RoleProjector, RoleRelay}

// ErrNotBuilt: the configuration asks for an adapter this build does not
// wire in.
var ErrNotBuilt = errors.New("catalogd: not built")

// NotBuiltError names the flag or role that needs an adapter this build
// lacks. It matches ErrNotBuilt.
type NotBuiltError struct {
	// Feature is the flag or role asked for, such as "-nats".
	Feature string
	// Adapter is the module it needs, such as "event/natsbus".
	Adapter string
}

func (e *NotBuiltError) Error() string {
	return fmt.Sprintf("catalogd: %s requires the %s adapter, not wired in this build", e.Feature, e.Adapter)
}

// Is makes NotBuiltError match ErrNotBuilt.
func (e *NotBuiltError) Is(target error) bool { return target == ErrNotBuilt }

// ErrConfig: the flags contradict each other or name something unknown.
var ErrConfig = errors.New("catalogd: invalid configuration")

// ConfigError says what is wrong with a Config. It matches ErrConfig.
type ConfigError struct{ Reason string }

func (e *ConfigError) Error() string { return "catalogd: invalid configuration: " + e.Reason }

// Is makes ConfigError match ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// check refuses configurations this build cannot run, before anything is
// opened.
func (c *Config) check() error {
	if c.Role == "" {
		c.Role = RoleAll
	}
	if !slices.Contains(Roles, c.Role) {
		return &ConfigError{Reason: fmt.Sprintf("unknown role %q (want one of %v)", c.Role, Roles)}
	}
	switch {
	case c.NATS != "":
		return &NotBuiltError{Feature: "-nats", Adapter: "event/natsbus"}
	case c.Redis != "":
		return &NotBuiltError{Feature: "-redis", Adapter: "readmodel/redisstore"}
	case c.Role == RoleRelay:
		return &NotBuiltError{Feature: "-role relay", Adapter: "event/natsbus"}
	case c.Role == RoleProjector:
		return &NotBuiltError{Feature: "-role projector", Adapter: "readmodel/redisstore"}
	}
	if c.Postgres == "" && (c.Role == RoleWriter || c.Role == RoleReader) {
		return &ConfigError{Reason: fmt.Sprintf("-role %s needs -postgres: the in-memory store cannot be shared between processes", c.Role)}
	}
	if c.Seed < 0 {
		return &ConfigError{Reason: "-seed must not be negative"}
	}
	if c.Seed > 0 && c.Role == RoleReader {
		return &ConfigError{Reason: "-seed needs a role that writes (all or writer)"}
	}
	return nil
}

// backend is the store and log a process runs on. Adding a source of the
// log (a NATS follower for readers) means one more open function here.
type backend struct {
	st     store.Store
	lg     store.Log
	ready  func(context.Context) error // nil: always ready
	closes []func()
}

func (b *backend) close() {
	for i := len(b.closes) - 1; i >= 0; i-- {
		b.closes[i]()
	}
}

func openBackend(ctx context.Context, cfg Config) (*backend, error) {
	if cfg.Postgres != "" {
		return openPostgres(ctx, cfg)
	}
	m := store.NewMemory()
	return &backend{st: m, lg: m, closes: []func(){func() { _ = m.Close() }}}, nil
}

func openPostgres(ctx context.Context, cfg Config) (*backend, error) {
	// The pool is pgx's default (max(4, cores) connections) unless the URL
	// sets pool_max_conns: 32 was tried under load.sh and made PostgreSQL
	// take the readers' CPU on this 2-core machine (BENCHMARKS.md).
	pool, err := pgxpool.New(ctx, cfg.Postgres)
	if err != nil {
		return nil, &ConfigError{Reason: "-postgres: " + err.Error()}
	}
	reg := event.NewRegistry()
	if err := catalog.RegisterEvents(reg); err != nil {
		pool.Close()
		return nil, err
	}
	opts := []pgstore.Option{pgstore.WithLogger(cfg.Logger)}
	if cfg.Schema != "" {
		opts = append(opts, pgstore.WithSchema(cfg.Schema))
	}
	st, err := pgstore.New(ctx, pool, reg, opts...)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("catalogd: open PostgreSQL store: %w", err)
	}
	return &backend{
		st: st, lg: st,
		ready:  func(ctx context.Context) error { return pool.Ping(ctx) },
		closes: []func(){pool.Close, func() { _ = st.Close() }},
	}, nil
}

// sides is what a role hands the HTTP API, and what to stop on shutdown.
type sides struct {
	opts  httpapi.Options
	close func() error
}

// buildRole wires one role on a backend: one function per role.
func buildRole(ctx context.Context, cfg Config, be *backend) (*sides, error) {
	switch cfg.Role {
	case RoleWriter:
		return buildWriter(cfg, be), nil
	case RoleReader:
		return buildReader(ctx, cfg, be)
	default:
		return buildAll(ctx, cfg, be)
	}
}

// buildAll runs the whole catalog in process, views fed inline: a query
// after a write's response always sees it.
func buildAll(ctx context.Context, cfg Config, be *backend) (*sides, error) {
	app, err := catalog.Open(ctx, be.st, be.lg, catalog.Config{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return &sides{
		opts:  httpapi.Options{Writer: app, Views: httpapi.MemoryViews(app.Views, app.Trending), Progress: app.Runner, Ready: be.ready},
		close: app.Close,
	}, nil
}

// buildWriter runs the write model only: no views, no projection.
func buildWriter(cfg Config, be *backend) *sides {
	mw := []command.Middleware{command.Retry(catalog.RetryAttempts, catalog.RetryBackoff), command.Logging(cfg.Logger)}
	bus := command.New(be.st, command.WithMiddleware(mw...))
	catalog.NewDomain(be.st).Register(bus)
	return &sides{opts: httpapi.Options{Writer: bus, Ready: be.ready}, close: func() error { return nil }}
}

// buildReader follows the log with its own runner into in-memory views. The
// checkpoints are in memory too, so a restarted reader rebuilds its views
// from the log, which is what in-memory views need.
func buildReader(ctx context.Context, cfg Config, be *backend) (*sides, error) {
	views, trending := catalog.NewViews(), catalog.NewTrending(catalog.TrendingWindow, catalog.TrendingThreshold)
	r := projection.NewRunner(be.lg, projection.WithLogger(cfg.Logger))
	if err := r.Add(views, projection.AsAsync(), projection.WithVersion(catalog.ViewsVersion)); err != nil {
		return nil, err
	}
	if err := r.Add(trending, projection.AsAsync()); err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		_ = r.Close()
		return nil, err
	}
	return &sides{
		opts:  httpapi.Options{Views: httpapi.MemoryViews(views, trending), Progress: r, Ready: be.ready},
		close: r.Close,
	}, nil
}

// discardLogger is the logger of a Config without one.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
