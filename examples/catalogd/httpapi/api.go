package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/examples/catalog"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// PositionHeader carries the read-your-writes token: set on every write
// response, honoured on every query.
const PositionHeader = "Cqrs-Position"

// Defaults for the zero Options.
const (
	DefaultMaxBodyBytes       = 64 << 10
	DefaultConsistencyTimeout = 2 * time.Second
	DefaultReadyLag           = 2 * time.Second
)

// Dispatcher is the write side: *catalog.App and *command.Bus implement it.
type Dispatcher interface {
	Dispatch(ctx context.Context, cmd any) (command.Result, error)
}

// Views answers the catalog's queries. The methods take a context and
// return an error so that views kept outside the process (Redis) fit the
// same interface; MemoryViews adapts the in-memory catalog.Views.
type Views interface {
	// Product returns the product view, or an error matching
	// store.ErrNotFound.
	Product(ctx context.Context, id string) (catalog.ProductView, error)
	// Seller returns the seller view, or an error matching
	// store.ErrNotFound.
	Seller(ctx context.Context, id string) (catalog.SellerView, error)
	// TopRated appends the n best-rated products to dst.
	TopRated(ctx context.Context, n int, dst []catalog.Rated) ([]catalog.Rated, error)
	// InStock appends up to limit in-stock product IDs after the cursor.
	InStock(ctx context.Context, after string, limit int, dst []string) ([]string, error)
	// BySeller appends the seller's product IDs to dst.
	BySeller(ctx context.Context, sellerID string, dst []string) ([]string, error)
	// Trending reports whether the product has the trending badge at now.
	Trending(ctx context.Context, productID string, now time.Time) (bool, error)
}

// Progress reports how far the projections feeding the views are:
// *projection.Runner implements it.
type Progress interface {
	WaitFor(ctx context.Context, name string, pos event.Position) error
	Status(ctx context.Context) ([]projection.Status, error)
}

var _ Progress = (*projection.Runner)(nil)

// Options configures New. Writer and Views may each be nil (a read-only or
// write-only process); with neither, Progress alone serves /v1/status and
// /readyz of a process that projects or relays.
type Options struct {
	// Writer dispatches commands; nil answers writes with 421.
	Writer Dispatcher
	// Views answers queries; nil answers queries with 421.
	Views Views
	// Progress is required with Views: it backs read-your-writes, /readyz
	// and /v1/status.
	Progress Progress
	// Ready, if set, is also checked by /readyz (a write-only process
	// checks that its store answers).
	Ready func(ctx context.Context) error
	// Logger receives internal errors (default slog.Default()).
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// ConsistencyTimeout bounds a read-your-writes wait (default
	// DefaultConsistencyTimeout).
	ConsistencyTimeout time.Duration
	// ReadyLag is how far behind the log head (by commit time) a
	// projector may be and still count as caught up for /readyz (default
	// DefaultReadyLag).
	ReadyLag time.Duration
	// Now is the clock for the trending badge (default time.Now).
	Now func() time.Time
}

// ErrNoSides is returned by New when Options has neither a Writer nor
// Views nor Progress (a process that only projects or relays serves its
// status: Progress alone).
var ErrNoSides = errors.New("httpapi: options need a Writer, Views or Progress")

// ErrNoProgress is returned by New when Options has Views but no Progress.
var ErrNoProgress = errors.New("httpapi: options with Views need a Progress")

type api struct {
	o   Options
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the catalog's HTTP handler.
//
// Errors: ErrNoSides, ErrNoProgress.
func New(o Options) (http.Handler, error) {
	if o.Writer == nil && o.Views == nil && o.Progress == nil {
		return nil, ErrNoSides
	}
	if o.Views != nil && o.Progress == nil {
		return nil, ErrNoProgress
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.ConsistencyTimeout <= 0 {
		o.ConsistencyTimeout = DefaultConsistencyTimeout
	}
	if o.ReadyLag <= 0 {
		o.ReadyLag = DefaultReadyLag
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &api{o: o, log: o.Logger, mux: http.NewServeMux()}
	a.routes()
	return a, nil
}

// ServeHTTP dispatches to the routes. The mux's own 404 and 405 answers
// are plain text; they are turned into problem documents here (the Allow
// header of a 405 is kept). A matched route goes through the mux's own
// ServeHTTP, which sets the path values.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := a.mux.Handler(r)
	if pattern != "" {
		a.mux.ServeHTTP(w, r)
		return
	}
	rec := &captured{h: http.Header{}}
	h.ServeHTTP(rec, r)
	if allow := rec.h.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	switch rec.code {
	case http.StatusMethodNotAllowed:
		a.problem(w, r, Problem{Type: TypeMethodNotAllowed, Status: http.StatusMethodNotAllowed, Detail: r.Method + " is not allowed on " + r.URL.Path})
	case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		// Path cleaning ("//v1/x" to "/v1/x"): keep the mux's redirect.
		if loc := rec.h.Get("Location"); loc != "" {
			w.Header().Set("Location", loc)
		}
		w.WriteHeader(rec.code)
	default:
		a.problem(w, r, Problem{Type: TypeNotFound, Status: http.StatusNotFound, Detail: "no route for " + r.Method + " " + r.URL.Path})
	}
}

// captured records the status and headers of the mux's own answers.
type captured struct {
	h    http.Header
	code int
}

func (c *captured) Header() http.Header { return c.h }

func (c *captured) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return len(b), nil
}

func (c *captured) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}

// Readiness and status.

func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when every projector is caught up (running, or
// catching up less than ReadyLag behind the head) and Ready, if set,
// succeeds; 503 otherwise.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if a.o.Ready != nil {
		if err := a.o.Ready(r.Context()); err != nil {
			a.log.WarnContext(r.Context(), "catalogd: not ready", "err", err)
			a.problem(w, r, Problem{Type: TypeNotReady, Status: http.StatusServiceUnavailable, Detail: "the store does not answer", retryAfter: 1})
			return
		}
	}
	if a.o.Progress != nil {
		sts, err := a.o.Progress.Status(r.Context())
		if err != nil {
			a.log.WarnContext(r.Context(), "catalogd: status failed", "err", err)
			a.problem(w, r, Problem{Type: TypeNotReady, Status: http.StatusServiceUnavailable, Detail: "projection status unavailable", retryAfter: 1})
			return
		}
		var behind []string
		for _, s := range sts {
			// A standby (another process holds the projector's lease) is
			// doing its job: waiting to take over.
			caughtUp := s.State == projection.Running || s.State == projection.Standby ||
				(s.State == projection.CatchingUp && s.TimeBehind <= a.o.ReadyLag)
			if !caughtUp {
				behind = append(behind, s.Name+" ("+s.State.String()+")")
			}
		}
		if len(behind) > 0 {
			a.problem(w, r, Problem{Type: TypeNotReady, Status: http.StatusServiceUnavailable, Detail: "projectors not caught up", NotReady: behind, retryAfter: 1})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// StatusJSON is one projector in the /v1/status answer. The error text of
// a failing projector is logged, not served: Failing says that there is
// one and State says which kind.
type StatusJSON struct {
	Name         string         `json:"name"`
	Mode         string         `json:"mode"`
	State        string         `json:"state"`
	Checkpoint   event.Position `json:"checkpoint"`
	Head         event.Position `json:"head"`
	Behind       uint64         `json:"behind"`
	TimeBehindMS int64          `json:"time_behind_ms"`
	HeldBack     bool           `json:"held_back"`
	Parked       int            `json:"parked"`
	Version      int            `json:"version"`
	Failing      bool           `json:"failing"`
	// Leased, Owner and Epoch: the projector runs under a lease (several
	// processes, one applying), held by Owner ("" when nobody holds it)
	// with fencing token Epoch.
	Leased bool   `json:"leased,omitempty"`
	Owner  string `json:"owner,omitempty"`
	Epoch  uint64 `json:"epoch,omitempty"`
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	out := struct {
		Writer      bool         `json:"writer"`
		Reader      bool         `json:"reader"`
		Projections []StatusJSON `json:"projections"`
	}{Writer: a.o.Writer != nil, Reader: a.o.Views != nil, Projections: []StatusJSON{}}
	if a.o.Progress != nil {
		sts, err := a.o.Progress.Status(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		for _, s := range sts {
			if s.Err != nil {
				a.log.WarnContext(r.Context(), "catalogd: projector failing", "projector", s.Name, "state", s.State.String(), "err", s.Err)
			}
			out.Projections = append(out.Projections, StatusJSON{
				Name: s.Name, Mode: s.Mode.String(), State: s.State.String(),
				Checkpoint: s.Checkpoint, Head: s.Head, Behind: s.Behind,
				TimeBehindMS: s.TimeBehind.Milliseconds(), HeldBack: s.HeldBack != nil,
				Parked: s.Parked, Version: s.Version, Failing: s.Err != nil,
				Leased: s.Leased, Owner: s.Owner, Epoch: s.Epoch,
			})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// memoryViews adapts the in-memory read models.
type memoryViews struct {
	v *catalog.Views
	t *catalog.Trending
}

// MemoryViews serves queries from the in-memory catalog views and, if t is
// not nil, the trending badge.
func MemoryViews(v *catalog.Views, t *catalog.Trending) Views { return memoryViews{v: v, t: t} }

func (m memoryViews) Product(_ context.Context, id string) (catalog.ProductView, error) {
	p, ok := m.v.Product(id)
	if !ok {
		return p, store.NotFound("product", id)
	}
	return p, nil
}

func (m memoryViews) Seller(_ context.Context, id string) (catalog.SellerView, error) {
	s, ok := m.v.Seller(id)
	if !ok {
		return s, store.NotFound("seller", id)
	}
	return s, nil
}

func (m memoryViews) TopRated(_ context.Context, n int, dst []catalog.Rated) ([]catalog.Rated, error) {
	return m.v.TopRated(n, dst), nil
}

func (m memoryViews) InStock(_ context.Context, after string, limit int, dst []string) ([]string, error) {
	return m.v.InStock(after, limit, dst), nil
}

func (m memoryViews) BySeller(_ context.Context, sellerID string, dst []string) ([]string, error) {
	return m.v.BySeller(sellerID, dst), nil
}

func (m memoryViews) Trending(_ context.Context, productID string, now time.Time) (bool, error) {
	return m.t != nil && m.t.IsTrending(productID, now), nil
}
