package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// DefaultSchema is the schema New uses without WithSchema.
const DefaultSchema = "cqrskit"

// DefaultPollInterval is how often Wait re-checks the log without WithPollInterval.
const DefaultPollInterval = 500 * time.Millisecond

// Store is the PostgreSQL write store, event log, checkpoint store and
// dead-letter store. Create it with New; it is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	reg     *event.Registry
	schema  string
	clock   func() time.Time
	logger  *slog.Logger
	poll    time.Duration
	notify  bool
	channel string // LISTEN/NOTIFY channel of this schema
	q       queries
	types   knownTypes // event types reg has encoded
	// rawAppend: the append bypasses pgx's batch (sendAppendRaw), unless
	// the pool's connections have a tracer, which must see it.
	rawAppend bool

	// Calls that use the pool are counted in active, so that Close can wait
	// for them and the caller may close the pool as soon as Close returns.
	// (Not an RWMutex: a handler may call Head inside Update, and a nested
	// read lock deadlocks against a waiting Close.)
	life   sync.Mutex
	idle   sync.Cond // signalled when active drops to 0 after Close
	active int
	closed bool

	w watcher

	// beforeCommit, when set (by tests only), runs between the append of
	// a unit of work's events and its COMMIT, to simulate slow commits.
	beforeCommit func(ctx context.Context)
}

var (
	_ store.Store                = (*Store)(nil)
	_ store.Log                  = (*Store)(nil)
	_ projection.PartitionReader = (*Store)(nil)
	_ store.HorizonReporter      = (*Store)(nil)
	_ store.EventCounter         = (*Store)(nil)
	_ projection.CheckpointStore = (*Store)(nil)
	_ projection.ParkStore       = (*Store)(nil)
)

// Option configures New.
type Option func(*Store)

// WithSchema sets the schema that holds the store's tables (default
// DefaultSchema). Stores with different schemas in one database are
// independent.
func WithSchema(name string) Option { return func(s *Store) { s.schema = name } }

// WithClock sets the function that stamps event times (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.clock = now } }

// WithLogger sets where the store reports problems it handles itself, such
// as a lost LISTEN connection (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.logger = l } }

// WithPollInterval bounds how long Wait can miss an advance of the log: it
// re-checks the head at this interval even without a notification (default
// DefaultPollInterval). See the package doc for why notifications alone are
// not enough.
func WithPollInterval(d time.Duration) Option { return func(s *Store) { s.poll = d } }

// WithNotify turns on or off the notifications that tell other processes'
// stores about this store's commits (default on). Without them, their Wait
// calls learn of new events only at their poll interval; waiters in this
// process are woken either way.
func WithNotify(on bool) Option { return func(s *Store) { s.notify = on } }

// New returns a Store that keeps its tables in a schema of the database
// behind pool, creating or upgrading them first. Migrations are idempotent
// and serialised with an advisory lock, so several processes may call New at
// once. The pool stays the caller's: close the Store before the pool.
//
// reg decodes payloads in Read and encodes them at commit; every event type
// that is recorded must be registered in it.
//
// Errors: an error for a nil pool or registry or an empty schema name;
// errors matching ctx.Err(); the migration's driver error, wrapped.
func New(ctx context.Context, pool *pgxpool.Pool, reg *event.Registry, opts ...Option) (*Store, error) {
	if pool == nil || reg == nil {
		return nil, errors.New("pgstore: New needs a pool and a registry")
	}
	s := &Store{
		pool:   pool,
		reg:    reg,
		schema: DefaultSchema,
		clock:  time.Now,
		logger: slog.New(slog.DiscardHandler),
		poll:   DefaultPollInterval,
		notify: true,
	}
	for _, o := range opts {
		o(s)
	}
	if s.schema == "" {
		return nil, errors.New("pgstore: empty schema name")
	}
	if s.poll <= 0 {
		s.poll = DefaultPollInterval
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.idle.L = &s.life
	s.channel = channelName(s.schema)
	s.q = buildQueries(pgx.Identifier{s.schema}.Sanitize())
	s.rawAppend = pool.Config().ConnConfig.Tracer == nil
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	s.w.init()
	return s, nil
}

// Schema returns the schema that holds the store's tables.
func (s *Store) Schema() string { return s.schema }

// enter marks the start of a call that uses the pool; it fails once the store
// is closed. Every successful enter must be paired with leave.
func (s *Store) enter() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.active++
	return nil
}

func (s *Store) leave() {
	s.life.Lock()
	defer s.life.Unlock()
	s.active--
	if s.active == 0 && s.closed {
		s.idle.Broadcast()
	}
}

// Close makes later calls return store.ErrClosed, releases Wait calls in
// progress (with store.ErrClosed), sends the last pending notification and
// stops the store's goroutines and LISTEN connection. It first waits for
// units of work and reads in progress to finish, so it must not be called
// from inside Update. The pool is not closed. Closing twice is a no-op.
func (s *Store) Close() error {
	s.life.Lock()
	s.closed = true
	for s.active > 0 {
		s.idle.Wait()
	}
	s.life.Unlock()
	s.w.shutdown()
	return nil
}

// lockKey is the advisory lock key that serialises schema migrations of one
// schema across processes.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("cqrskit/pgstore:" + schema))
	return int64(h.Sum64())
}

// channelName returns the notification channel of a schema; PostgreSQL
// limits channel names to 63 bytes, so long schema names are hashed.
func channelName(schema string) string {
	name := "cqrskit." + schema
	if len(name) <= 63 {
		return name
	}
	return fmt.Sprintf("cqrskit.%x", uint64(lockKey(schema)))
}
