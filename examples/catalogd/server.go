package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/examples/catalogd/httpapi"
	"github.com/cqrskit/cqrs/store"
)

// Config is the topology and tuning of one catalogd process; the flags map
// onto it one to one.
type Config struct {
	// Addr is the listen address (default ":8080"; ":0" picks a port).
	Addr string
	// Role is what the process does (default RoleAll).
	Role Role
	// Postgres is the PostgreSQL URL of the write side and log; empty
	// runs role all on the in-memory store.
	Postgres string
	// Schema is the PostgreSQL schema (default pgstore's "cqrskit").
	Schema string
	// NATS is the NATS URL: the relay publishes the PostgreSQL log to a
	// JetStream stream there, and readers and projectors follow that
	// stream instead of PostgreSQL.
	NATS string
	// Stream is the JetStream stream (default DefaultStream).
	Stream string
	// Redis is the Redis address ("host:port" or a redis:// URL) of the
	// views the projector keeps and stateless readers serve.
	Redis string
	// RedisPrefix is the key prefix of the views and the projector's
	// lease in Redis (default DefaultRedisPrefix).
	RedisPrefix string
	// Owner names a projector process in its lease (default: host name,
	// process id and a random suffix); unique among the projectors.
	Owner string
	// LeaseTTL bounds how long the views go without a projector after its
	// owner dies (default projection.DefaultLeaseTTL).
	LeaseTTL time.Duration
	// Seed lists this many products (with sellers, shipping options and a
	// review each, from catalog.Gen with seed 1) before serving; products
	// already there are skipped.
	Seed int
	// Logger receives the process's logs (default: discarded).
	Logger *slog.Logger
	// ConsistencyTimeout bounds a read-your-writes wait (default 2 s).
	ConsistencyTimeout time.Duration
	// MaxBodyBytes bounds request bodies (default 64 KiB).
	MaxBodyBytes int64
	// NaiveJoin, a PostgreSQL URL, turns role all into the seed's design
	// for comparison: product reads run the 5-table JOIN there on tables
	// loaded after the seed and written through by every command.
	NaiveJoin string
}

// Server timeouts: a slow client cannot hold a connection for long, and a
// read-your-writes wait (2 s by default) fits in the write timeout.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 15 * time.Second
	IdleTimeout       = 120 * time.Second
)

// Server is a running catalogd.
type Server struct {
	cfg   Config
	ln    net.Listener
	http  *http.Server
	sides *sides
	be    *backend
	done  chan error
}

// Start opens the store for cfg's topology, wires the role, starts the
// projections and serves HTTP on cfg.Addr until Shutdown or ctx ends (ctx
// only bounds start-up and the projections' lifetime; stop the server with
// Shutdown).
//
// Errors: *ConfigError (ErrConfig) for contradictory flags; the errors of
// PostgreSQL, NATS or Redis when they cannot be reached; the listener's
// error.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Addr == "" {
		cfg.Addr = ":8080"
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	be, err := openBackend(ctx, cfg)
	if err != nil {
		return nil, err
	}
	sd, err := buildRole(ctx, cfg, be)
	if err != nil {
		be.close()
		return nil, err
	}
	s := &Server{cfg: cfg, sides: sd, be: be, done: make(chan error, 1)}
	if cfg.Seed > 0 {
		if err := seed(ctx, sd.opts.Writer, cfg.Seed); err != nil {
			s.closeSides()
			return nil, err
		}
	}
	if cfg.NaiveJoin != "" {
		if err := openNaiveJoin(ctx, cfg.NaiveJoin, be.lg, sd); err != nil {
			s.closeSides()
			return nil, err
		}
	}
	o := sd.opts
	o.Logger, o.ConsistencyTimeout, o.MaxBodyBytes = cfg.Logger, cfg.ConsistencyTimeout, cfg.MaxBodyBytes
	h, err := httpapi.New(o)
	if err != nil {
		s.closeSides()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.closeSides()
		return nil, err
	}
	s.ln = ln
	s.http = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	go func() {
		err := s.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	cfg.Logger.Info("catalogd: serving", "role", string(cfg.Role), "addr", ln.Addr().String(), "postgres", cfg.Postgres != "", "nats", cfg.NATS != "", "redis", cfg.Redis != "")
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the server's base URL, with a loopback host when it listens on
// every interface.
func (s *Server) URL() string {
	a := s.ln.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(a.Port))
}

// Done delivers the serve loop's error (nil after Shutdown)
// once the server stops serving.
func (s *Server) Done() <-chan error { return s.done }

// Shutdown stops accepting connections, waits for requests in flight until
// ctx ends, then stops the projections and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = errors.Join(err, s.http.Close())
	}
	return errors.Join(err, s.closeSides())
}

func (s *Server) closeSides() error {
	err := s.sides.close()
	s.be.close()
	return err
}

// seed lists n products from catalog.Gen (seed 1), one seller per hundred
// products, with shipping options and one review each. Entities already
// there are skipped, so a restarted writer can seed again. Products are
// seeded by seedWorkers goroutines (each product's commands in order), which
// keeps a PostgreSQL seed of 100K products to minutes rather than a
// quarter of an hour.
func seed(ctx context.Context, w httpapi.Dispatcher, n int) error {
	const reviews = 1
	g := catalog.NewGen(1, max(1, n/100), n)
	cmds := g.Seed(reviews)
	dispatch := func(cmd any) error {
		if _, err := w.Dispatch(ctx, cmd); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("catalogd: seed: %w", err)
		}
		return nil
	}
	for _, cmd := range cmds[:g.Sellers] {
		if err := dispatch(cmd); err != nil {
			return err
		}
	}
	products := cmds[g.Sellers:]
	per := 2 + reviews // ListProduct, SetShipping, the reviews
	errs := make([]error, seedWorkers)
	var wg sync.WaitGroup
	for wk := range seedWorkers {
		wg.Go(func() {
			for i := wk; i*per < len(products); i += seedWorkers {
				for _, cmd := range products[i*per : (i+1)*per] {
					if err := dispatch(cmd); err != nil {
						errs[wk] = err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// seedWorkers is how many products seed lists at once.
const seedWorkers = 8
