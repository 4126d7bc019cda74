package catalog

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// Config tunes Open. The zero value runs every projector inline, with
// in-memory checkpoints and no logging.
type Config struct {
	// Async feeds the read models from the log on their own goroutines
	// instead of inside Dispatch; use App.WaitFor for read-your-writes.
	Async bool
	// Checkpoints stores projector checkpoints (default in-memory).
	Checkpoints projection.CheckpointStore
	// Logger receives projection failures and rejected commands.
	Logger *slog.Logger
	// Middleware wraps every dispatch, after the built-in retry on
	// conflict.
	Middleware []command.Middleware
}

// RetryAttempts is how often Open's built-in retry runs a command that hit
// a transient conflict (a concurrent writer on a durable store changed the
// row between the handler's read and its write; store.Memory runs units of
// work one at a time and never does). Permanent failures are never retried;
// see command.Retry.
const RetryAttempts = 12

// RetryBackoff is the pause before retry n: a random duration up to 1ms
// doubled n-1 times, at most 100ms. The randomness spreads out writers that
// collided on one row (a popular product's stock), so that one of them wins
// each round instead of all colliding again.
func RetryBackoff(n int) time.Duration {
	ceiling := min(time.Millisecond<<min(n-1, 10), 100*time.Millisecond)
	return time.Duration(rand.Int64N(int64(ceiling))) + 1
}

// The trending badge of Open's Trending read model: a product trends with
// TrendingThreshold reviews within TrendingWindow. Processes that build
// their own read side (a reader following a remote log) use the same.
const (
	TrendingWindow    = 7 * 24 * time.Hour
	TrendingThreshold = 3
)

// App wires the catalog: the write model on a store, the command bus, and
// the read models fed by a projection runner.
type App struct {
	Domain   *Domain
	Bus      *command.Bus
	Runner   *projection.Runner
	Views    *Views
	Trending *Trending
}

// Open builds the catalog on st and its log lg (a store.Memory is both) and
// starts the projections; they catch up with whatever lg already holds.
func Open(ctx context.Context, st store.Store, lg store.Log, cfg Config) (*App, error) {
	a := &App{
		Domain:   NewDomain(st),
		Views:    NewViews(),
		Trending: NewTrending(TrendingWindow, TrendingThreshold),
	}
	var ropts []projection.Option
	if cfg.Checkpoints != nil {
		ropts = append(ropts, projection.WithCheckpoints(cfg.Checkpoints))
	}
	if cfg.Logger != nil {
		ropts = append(ropts, projection.WithLogger(cfg.Logger))
	}
	a.Runner = projection.NewRunner(lg, ropts...)
	var mode []projection.AddOption
	if cfg.Async {
		mode = append(mode, projection.AsAsync())
	}
	if err := a.Runner.Add(a.Views, append([]projection.AddOption{projection.WithVersion(ViewsVersion)}, mode...)...); err != nil {
		return nil, err
	}
	if err := a.Runner.Add(a.Trending, mode...); err != nil {
		return nil, err
	}
	mw := []command.Middleware{command.Retry(RetryAttempts, RetryBackoff)}
	if cfg.Logger != nil {
		mw = append(mw, command.Logging(cfg.Logger))
	}
	mw = append(mw, cfg.Middleware...)
	opts := []command.Option{command.WithMiddleware(mw...)}
	if !cfg.Async {
		opts = append(opts, command.WithSyncer(a.Runner))
	}
	a.Bus = command.New(st, opts...)
	a.Domain.Register(a.Bus)
	if err := a.Runner.Start(ctx); err != nil {
		a.Runner.Close()
		return nil, err
	}
	return a, nil
}

// Dispatch sends a command; see command.Bus.Dispatch.
func (a *App) Dispatch(ctx context.Context, cmd any) (command.Result, error) {
	return a.Bus.Dispatch(ctx, cmd)
}

// WaitFor blocks until every read model has applied the command that
// returned res; with inline projection it returns at once.
func (a *App) WaitFor(ctx context.Context, res command.Result) error {
	return a.Runner.WaitFor(ctx, "", res.Position)
}

// Close stops the projections. It does not close the store.
func (a *App) Close() error { return a.Runner.Close() }
