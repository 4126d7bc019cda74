package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/event/natsbus"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
	"github.com/cqrskit/cqrs/readmodel/redisstore/catalogredis"
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
	// RoleReader: queries only (writes answer 421): follows the log, from
	// PostgreSQL or (-nats) the JetStream stream, into in-memory views, or
	// (-redis) serves the views the projector keeps in Redis.
	RoleReader Role = "reader"
	// RoleProjector: feeds the views kept in Redis (-redis) from the
	// PostgreSQL log or, with -nats, the JetStream stream, under a lease
	// so that several projector processes take turns; queries answer 421.
	RoleProjector Role = "projector"
	// RoleRelay: publishes the PostgreSQL log to NATS JetStream (-nats);
	// commands and queries answer 421.
	RoleRelay Role = "relay"
)

// Roles lists every role, in the order the usage text gives them.
var Roles = []Role{RoleAll, RoleWriter, RoleReader, RoleProjector, RoleRelay}

// ErrConfig: the flags contradict each other or name something unknown.
var ErrConfig = errors.New("catalogd: invalid configuration")

// ConfigError says what is wrong with a Config. It matches ErrConfig.
type ConfigError struct{ Reason string }

func (e *ConfigError) Error() string { return "catalogd: invalid configuration: " + e.Reason }

// Is makes ConfigError match ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// check refuses configurations that cannot run, before anything is opened,
// and fills in the defaults of the adapters' names.
func (c *Config) check() error {
	if c.Role == "" {
		c.Role = RoleAll
	}
	if !slices.Contains(Roles, c.Role) {
		return &ConfigError{Reason: fmt.Sprintf("unknown role %q (want one of %v)", c.Role, Roles)}
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.RedisPrefix == "" {
		c.RedisPrefix = DefaultRedisPrefix
	}
	bad := func(format string, a ...any) error { return &ConfigError{Reason: fmt.Sprintf(format, a...)} }
	switch c.Role {
	case RoleAll:
		if c.NATS != "" || c.Redis != "" {
			return bad("role all keeps the views in process: -nats and -redis need -role relay, reader or projector")
		}
	case RoleWriter:
		if c.Postgres == "" {
			return bad("-role writer needs -postgres: the in-memory store cannot be shared between processes")
		}
		if c.NATS != "" || c.Redis != "" {
			return bad("-role writer uses only -postgres; -role relay publishes its log to -nats, -role projector feeds -redis")
		}
	case RoleReader:
		switch {
		case c.NATS != "" && c.Redis != "":
			return bad("-role reader serves either in-memory views fed from -nats or the views in -redis, not both")
		case c.NATS != "" && c.Postgres != "":
			return bad("-role reader follows one log: -postgres or -nats, not both")
		case c.Redis != "" && c.Postgres != "":
			return bad("-role reader -redis reads only Redis; drop -postgres")
		case c.Postgres == "" && c.NATS == "" && c.Redis == "":
			return bad("-role reader needs -postgres or -nats (a log to follow) or -redis (views to serve): the in-memory store cannot be shared between processes")
		}
	case RoleRelay:
		if c.Postgres == "" || c.NATS == "" {
			return bad("-role relay publishes the -postgres log to -nats: it needs both")
		}
		if c.Redis != "" {
			return bad("-role relay does not use -redis")
		}
	case RoleProjector:
		if c.Redis == "" {
			return bad("-role projector feeds the views in Redis: it needs -redis")
		}
		if (c.Postgres == "") == (c.NATS == "") {
			return bad("-role projector follows one log: give -postgres or -nats (exactly one)")
		}
	}
	if c.Seed < 0 {
		return bad("-seed must not be negative")
	}
	if c.Seed > 0 && c.Role != RoleAll && c.Role != RoleWriter {
		return bad("-seed needs a role that writes (all or writer)")
	}
	if c.NaiveJoin != "" && c.Role != RoleAll {
		return bad("-naive-join is a mode of role all")
	}
	if c.LeaseTTL < 0 {
		return bad("-lease-ttl must not be negative")
	}
	return nil
}

// Defaults of the adapters' names.
const (
	// DefaultStream is the JetStream stream the relay publishes to and
	// NATS readers and projectors follow.
	DefaultStream = "CATALOG"
	// DefaultRedisPrefix is the key prefix of the views and leases in
	// Redis.
	DefaultRedisPrefix = "catalogd"
)

// backend is what a process connects to: the store and log (PostgreSQL,
// memory, or a JetStream follower as the log), NATS, Redis.
type backend struct {
	reg    *event.Registry
	st     store.Store // nil unless the role writes (or relays the PostgreSQL log)
	pgLog  store.Log   // the PostgreSQL log, for the relay
	lg     store.Log   // the log the role's projections follow
	js     jetstream.JetStream
	rdb    redis.UniversalClient
	ready  []func(context.Context) error
	closes []func()
}

func (b *backend) close() {
	for i := len(b.closes) - 1; i >= 0; i-- {
		b.closes[i]()
	}
}

// readyFunc checks every connection the backend holds; nil when none
// needs checking (the in-memory store).
func (b *backend) readyFunc() func(context.Context) error {
	if len(b.ready) == 0 {
		return nil
	}
	checks := slices.Clone(b.ready)
	return func(ctx context.Context) error {
		for _, c := range checks {
			if err := c(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

func openBackend(ctx context.Context, cfg Config) (_ *backend, err error) {
	reg := event.NewRegistry()
	if err := catalog.RegisterEvents(reg); err != nil {
		return nil, err
	}
	be := &backend{reg: reg}
	defer func() {
		if err != nil {
			be.close()
		}
	}()
	switch {
	case cfg.Postgres != "":
		if err := openPostgres(ctx, cfg, be); err != nil {
			return nil, err
		}
	case cfg.Role == RoleAll:
		m := store.NewMemory()
		be.st, be.lg = m, m
		be.closes = append(be.closes, func() { _ = m.Close() })
	}
	if cfg.NATS != "" {
		if err := openNATS(cfg, be); err != nil {
			return nil, err
		}
	}
	if cfg.Redis != "" {
		if err := openRedis(ctx, cfg, be); err != nil {
			return nil, err
		}
	}
	return be, nil
}

func openPostgres(ctx context.Context, cfg Config, be *backend) error {
	// The pool is pgx's default (max(4, cores) connections) unless the URL
	// sets pool_max_conns: 32 was tried under load.sh and made PostgreSQL
	// take the readers' CPU on this 2-core machine (BENCHMARKS.md).
	pool, err := pgxpool.New(ctx, cfg.Postgres)
	if err != nil {
		return &ConfigError{Reason: "-postgres: " + err.Error()}
	}
	be.closes = append(be.closes, pool.Close)
	opts := []pgstore.Option{pgstore.WithLogger(cfg.Logger)}
	if cfg.Schema != "" {
		opts = append(opts, pgstore.WithSchema(cfg.Schema))
	}
	st, err := pgstore.New(ctx, pool, be.reg, opts...)
	if err != nil {
		return fmt.Errorf("catalogd: open PostgreSQL store: %w", err)
	}
	be.closes = append(be.closes, func() { _ = st.Close() })
	be.st, be.pgLog, be.lg = st, st, st
	be.ready = append(be.ready, func(ctx context.Context) error { return pool.Ping(ctx) })
	return nil
}

// openNATS connects to NATS; readers and projectors then follow the
// stream with a natsbus.Follower instead of any other log.
func openNATS(cfg Config, be *backend) error {
	// Reconnect forever: a NATS restart must not end the process; the
	// follower and the relay report the outage (Unavailable) meanwhile.
	nc, err := nats.Connect(cfg.NATS, nats.Name("catalogd "+string(cfg.Role)), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("catalogd: connect to NATS %s: %w", cfg.NATS, err)
	}
	be.closes = append(be.closes, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("catalogd: JetStream: %w", err)
	}
	be.js = js
	be.ready = append(be.ready, func(context.Context) error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("catalogd: NATS connection %s", st)
		}
		return nil
	})
	if cfg.Role == RoleReader || cfg.Role == RoleProjector {
		f := natsbus.NewFollower(js, be.reg, natsbus.WithStream(cfg.Stream))
		be.closes = append(be.closes, func() { _ = f.Close() })
		be.lg = f
	}
	return nil
}

// openRedis connects to Redis at an address ("host:port") or a redis://
// URL, and checks that it answers.
func openRedis(ctx context.Context, cfg Config, be *backend) error {
	opt := &redis.Options{Addr: cfg.Redis}
	if strings.Contains(cfg.Redis, "://") {
		var err error
		if opt, err = redis.ParseURL(cfg.Redis); err != nil {
			return &ConfigError{Reason: "-redis: " + err.Error()}
		}
	}
	rdb := redis.NewClient(opt)
	be.closes = append(be.closes, func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("catalogd: connect to Redis %s: %w", cfg.Redis, err)
	}
	be.rdb = rdb
	be.ready = append(be.ready, func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	return nil
}

// sides is what a role hands the HTTP API, and what to stop on shutdown.
type sides struct {
	opts  httpapi.Options
	close func() error
}

// buildRole wires one role on a backend: one function per role.
func buildRole(ctx context.Context, cfg Config, be *backend) (*sides, error) {
	switch {
	case cfg.Role == RoleWriter:
		return buildWriter(cfg, be), nil
	case cfg.Role == RoleReader && cfg.Redis != "":
		return buildRedisReader(cfg, be)
	case cfg.Role == RoleReader:
		return buildReader(ctx, cfg, be)
	case cfg.Role == RoleRelay:
		return buildRelay(ctx, cfg, be)
	case cfg.Role == RoleProjector:
		return buildProjector(ctx, cfg, be)
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
		opts:  httpapi.Options{Writer: app, Views: httpapi.MemoryViews(app.Views, app.Trending), Progress: app.Runner, Ready: be.readyFunc()},
		close: app.Close,
	}, nil
}

// buildWriter runs the write model only: no views, no projection.
func buildWriter(cfg Config, be *backend) *sides {
	mw := []command.Middleware{command.Retry(catalog.RetryAttempts, catalog.RetryBackoff), command.Logging(cfg.Logger)}
	bus := command.New(be.st, command.WithMiddleware(mw...))
	catalog.NewDomain(be.st).Register(bus)
	return &sides{opts: httpapi.Options{Writer: bus, Ready: be.readyFunc()}, close: func() error { return nil }}
}

// buildReader follows the log (PostgreSQL, or the JetStream stream through
// a natsbus.Follower, whose positions are the PostgreSQL log's, so the
// writer's tokens work unchanged) with its own runner into in-memory views.
// The checkpoints are in memory too, so a restarted reader rebuilds its
// views from the log, which is what in-memory views need.
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
		opts:  httpapi.Options{Views: httpapi.MemoryViews(views, trending), Progress: r, Ready: be.readyFunc()},
		close: r.Close,
	}, nil
}

// buildRelay publishes the PostgreSQL log to the stream. Serving HTTP only
// for /healthz, /readyz and /v1/status, it shows the relay as a projector
// named "relay:<stream>" whose checkpoint is the newest position the stream
// acknowledged. Two relays on one stream are safe (natsbus fences them), so
// a second relay process is a hot standby.
//
// Each stream gets its own subjects (SubjectPrefix), so that two catalogs
// on one NATS server, or a stream an earlier run left behind, never claim
// the same subjects: JetStream refuses a stream whose subjects overlap
// another's.
func buildRelay(ctx context.Context, cfg Config, be *backend) (*sides, error) {
	prefix := SubjectPrefix(cfg.Stream)
	if err := checkStreamSubjects(ctx, be.js, cfg.Stream, prefix); err != nil {
		return nil, err
	}
	relay := natsbus.NewRelay(be.js, be.pgLog, be.reg, natsbus.WithStream(cfg.Stream), natsbus.WithSubjectPrefix(prefix))
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rp := &relayProgress{name: "relay:" + cfg.Stream, relay: relay, lg: be.pgLog, done: make(chan struct{})}
	go func() {
		defer close(rp.done)
		if err := relay.Run(rctx); err != nil {
			// A record that cannot be published at all: the relay stops
			// rather than skip it; /v1/status and /readyz show it.
			cfg.Logger.Error("catalogd: relay stopped", "stream", cfg.Stream, "err", err)
			rp.failed.Store(&err)
		}
	}()
	go func() { // ctx bounds the relay's lifetime, as it does the runners'
		select {
		case <-ctx.Done():
			cancel()
		case <-rp.done:
		}
	}()
	return &sides{
		opts: httpapi.Options{Progress: rp, Ready: be.readyFunc()},
		close: func() error {
			cancel()
			<-rp.done
			return nil
		},
	}, nil
}

// SubjectPrefix returns the subject prefix the relay publishes stream's
// records under: the stream's own name, so each stream owns "<name>.>"
// alone. (natsbus's default, "cqrs", is one prefix for every stream: a
// second catalog on the server could not create its stream.)
func SubjectPrefix(stream string) string { return stream }

// checkStreamSubjects refuses a stream that exists but does not take the
// relay's subjects (made by an earlier version with other subjects, or by
// someone else): publishing into it would fail on every record.
func checkStreamSubjects(ctx context.Context, js jetstream.JetStream, stream, prefix string) error {
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil // the relay creates it with the right subjects
	}
	if err != nil {
		return fmt.Errorf("catalogd: JetStream stream %s: %w", stream, err)
	}
	want := prefix + ".>"
	subjects := s.CachedInfo().Config.Subjects
	if slices.Contains(subjects, want) {
		return nil
	}
	return &ConfigError{Reason: fmt.Sprintf("-stream %s exists with subjects %v, but the relay publishes to %s: delete the stream or choose another -stream", stream, subjects, want)}
}

// relayProgress shows a Relay as a projector of the PostgreSQL log.
type relayProgress struct {
	name   string
	relay  *natsbus.Relay
	lg     store.Log
	done   chan struct{}
	failed atomic.Pointer[error]
}

func (p *relayProgress) Status(ctx context.Context) ([]projection.Status, error) {
	head, err := p.lg.Head(ctx)
	if err != nil {
		return nil, err
	}
	rs := p.relay.Status()
	s := projection.Status{Name: p.name, Mode: projection.Async, State: projection.Running, Checkpoint: rs.Published, Head: head, Err: rs.Err}
	if head > rs.Published {
		s.State = projection.CatchingUp
		// PostgreSQL's positions have holes: count the records, as the
		// runner does, rather than subtract positions.
		s.Behind = uint64(head - rs.Published)
		if c, ok := p.lg.(store.EventCounter); ok {
			if n, err := c.CountEvents(ctx, rs.Published, head, 1<<20); err == nil {
				s.Behind = n
			}
		}
	}
	switch {
	case p.failed.Load() != nil:
		s.State, s.Err = projection.Stopped, *p.failed.Load()
	case rs.Err != nil:
		s.State = projection.Unavailable
	}
	return []projection.Status{s}, nil
}

// WaitFor waits until the stream holds pos (polled: nothing in this
// process asks for it on a request path).
func (p *relayProgress) WaitFor(ctx context.Context, _ string, pos event.Position) error {
	return pollFor(ctx, p.name, pos, func(context.Context) (event.Position, error) { return p.relay.Status().Published, nil })
}

// buildProjector runs the catalogredis projector, exactly once into Redis,
// under a lease in Redis: several projector processes may run, one applies
// and the others stand by (State Standby, Owner in /v1/status) and take
// over within -lease-ttl of its death.
//
// The lease is redisstore's, next to the views, even with -postgres: the
// projector's commit script fences each batch on the lease key in the
// same Redis, atomically with the write, which a lease held in PostgreSQL
// cannot give (the script would find no lease in Redis and refuse every
// batch as fenced).
func buildProjector(ctx context.Context, cfg Config, be *backend) (*sides, error) {
	views, err := catalogredis.New(be.rdb, cfg.RedisPrefix)
	if err != nil {
		return nil, &ConfigError{Reason: "-redis-prefix: " + err.Error()}
	}
	leases := redisstore.NewLeases(be.rdb, cfg.RedisPrefix)
	r := projection.NewRunner(be.lg, projection.WithLogger(cfg.Logger), projection.WithLeases(leases, cfg.Owner, cfg.LeaseTTL))
	proj := views.Projector()
	if err := r.Add(proj, projection.AsAsync(), projection.WithVersion(catalog.ViewsVersion)); err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		_ = r.Close()
		return nil, err
	}
	return &sides{
		opts:  httpapi.Options{Progress: r, Ready: be.readyFunc()},
		close: func() error { return errors.Join(r.Close(), proj.Close()) },
	}, nil
}

// buildRedisReader serves the queries from the views the projector keeps
// in Redis: the process holds no state. Read-your-writes polls the
// projector's checkpoint in Redis (it is committed with each batch, so a
// checkpoint at or past the token means the views hold the write). Redis
// keeps no trending window: products never carry the trending badge here.
func buildRedisReader(cfg Config, be *backend) (*sides, error) {
	views, err := catalogredis.New(be.rdb, cfg.RedisPrefix)
	if err != nil {
		return nil, &ConfigError{Reason: "-redis-prefix: " + err.Error()}
	}
	rp := &redisProgress{proj: views.Projector(), leases: redisstore.NewLeases(be.rdb, cfg.RedisPrefix)}
	return &sides{
		opts:  httpapi.Options{Views: redisViews{views}, Progress: rp, Ready: be.readyFunc()},
		close: func() error { return nil },
	}, nil
}

// redisViews serves the queries from catalogredis.
type redisViews struct{ v *catalogredis.Views }

func (r redisViews) Product(ctx context.Context, id string) (catalog.ProductView, error) {
	p, ok, err := r.v.Product(ctx, id)
	if err == nil && !ok {
		err = store.NotFound("product", id)
	}
	return p, err
}

func (r redisViews) Seller(ctx context.Context, id string) (catalog.SellerView, error) {
	s, ok, err := r.v.Seller(ctx, id)
	if err == nil && !ok {
		err = store.NotFound("seller", id)
	}
	return s, err
}

func (r redisViews) TopRated(ctx context.Context, n int, dst []catalog.Rated) ([]catalog.Rated, error) {
	return r.v.TopRated(ctx, n, dst)
}

func (r redisViews) InStock(ctx context.Context, after string, limit int, dst []string) ([]string, error) {
	return r.v.InStock(ctx, after, limit, dst)
}

func (r redisViews) BySeller(ctx context.Context, sellerID string, dst []string) ([]string, error) {
	return r.v.BySeller(ctx, sellerID, dst)
}

// Trending is always false: the trending window is not kept in Redis.
func (redisViews) Trending(context.Context, string, time.Time) (bool, error) { return false, nil }

// redisProgress is the progress of the projector feeding Redis, as a
// stateless reader sees it: the checkpoint committed with the views, and
// the lease holder.
type redisProgress struct {
	proj   *redisstore.Projector // never run here: only its checkpoint is read
	leases *redisstore.Leases
	// seen is the highest checkpoint read so far: a token at or below it
	// needs no round trip (the checkpoint only moves forward, except when
	// Redis loses writes, and then the projector re-applies them).
	seen atomic.Uint64

	// Concurrent waiters share one checkpoint read in flight rather than
	// queue one each behind the projector's mutex.
	mu      sync.Mutex
	pending *cpRead
}

// cpRead is one checkpoint read shared by the callers that asked while it
// was in flight.
type cpRead struct {
	done chan struct{}
	cp   projection.Checkpoint
	err  error
}

// cpReadTimeout bounds a shared checkpoint read, which runs detached from
// the context of the request that started it (others wait for it too).
const cpReadTimeout = 2 * time.Second

func (p *redisProgress) checkpoint(ctx context.Context) (projection.Checkpoint, error) {
	p.mu.Lock()
	r := p.pending
	if r == nil {
		r = &cpRead{done: make(chan struct{})}
		p.pending = r
		go func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cpReadTimeout)
			r.cp, r.err = p.proj.LoadCheckpoint(rctx)
			cancel()
			p.mu.Lock()
			p.pending = nil
			p.mu.Unlock()
			close(r.done)
		}()
	}
	p.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		return projection.Checkpoint{}, ctx.Err()
	}
	if r.err != nil {
		return r.cp, r.err
	}
	for {
		old := p.seen.Load()
		if uint64(r.cp.Position) <= old || p.seen.CompareAndSwap(old, uint64(r.cp.Position)) {
			return r.cp, nil
		}
	}
}

// WaitFor polls the checkpoint in Redis until it reaches pos.
func (p *redisProgress) WaitFor(ctx context.Context, _ string, pos event.Position) error {
	if event.Position(p.seen.Load()) >= pos {
		return nil
	}
	return pollFor(ctx, catalogredis.Name, pos, func(ctx context.Context) (event.Position, error) {
		cp, err := p.checkpoint(ctx)
		return cp.Position, err
	})
}

// Status reports the checkpoint in Redis and the projector's lease. A
// stateless reader does not read the log, so Head is the checkpoint.
func (p *redisProgress) Status(ctx context.Context) ([]projection.Status, error) {
	cp, err := p.checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	l, err := p.leases.Holder(ctx, catalogredis.Name)
	if err != nil {
		return nil, err
	}
	return []projection.Status{{
		Name: catalogredis.Name, Mode: projection.Async, State: projection.Running,
		Checkpoint: cp.Position, Head: cp.Position, Version: cp.Version,
		Leased: true, Owner: l.Owner, Epoch: l.Token,
	}}, nil
}

// pollFor calls get until it reports pos or more, backing off from 1 ms
// to 20 ms between calls, and reports a *projection.NotReachedError (with
// the last failure as its cause) when ctx ends first.
func pollFor(ctx context.Context, name string, pos event.Position, get func(context.Context) (event.Position, error)) error {
	var reached event.Position
	var cause error
	wait := time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return &projection.NotReachedError{Projector: name, Want: pos, Reached: reached, State: projection.Running, Err: ctx.Err(), Cause: cause}
		case <-t.C:
		}
		got, err := get(ctx)
		if err == nil {
			if got >= pos {
				return nil
			}
			reached, cause = got, nil
		} else if ctx.Err() == nil {
			cause = err
		}
		t.Reset(wait)
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// discardLogger is the logger of a Config without one.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
