package pgstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/internal/notify"
	"github.com/cqrskit/cqrs/store"
)

// Wait implements store.Log. The first call starts the store's watcher: one
// LISTEN connection and one goroutine that re-reads the head when a
// notification arrives, when this process commits, and at the poll interval;
// all waiters share what it reads.
//
// Errors: store.ErrClosed, also for a Wait in progress when Close is
// called; ctx.Err(); the driver error of the first head read, wrapped.
func (s *Store) Wait(ctx context.Context, after event.Position) error {
	w := &s.w
	if err := w.start(&w.watching, s.listen, s.watch); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w.waiters.Add(1)
	defer w.waiters.Add(-1)
	// Take the channel before looking at the head: an advance published
	// after the look closes this channel or one before it.
	ch := w.wake.Wait()
	if w.seen.Load() <= uint64(after) {
		head, err := s.Head(ctx)
		if err != nil {
			return err
		}
		w.observe(head)
	}
	for w.seen.Load() <= uint64(after) {
		select {
		case <-ch:
			ch = w.wake.Wait()
		case <-ctx.Done():
			return ctx.Err()
		case <-w.done:
			return store.ErrClosed
		}
	}
	return nil
}

// committed is called after a unit of work with events has committed.
func (s *Store) committed() {
	s.w.kick() // waiters in this process
	if s.notify && s.w.start(&s.w.notifying, s.notifyLoop) == nil {
		select { // other processes; merges with a pending announcement
		case s.w.outbox <- struct{}{}:
		default:
		}
	}
}

// watcher holds the store's background goroutines and the head they share
// with waiters.
type watcher struct {
	mu        sync.Mutex
	stopped   bool
	watching  bool             // listen and watch are running
	notifying bool             // notifyLoop is running
	wake      notify.Broadcast // published when seen advances
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	seen    atomic.Uint64 // highest head read so far
	waiters atomic.Int64
	signal  chan struct{} // capacity 1: "the head may have moved"
	outbox  chan struct{} // capacity 1: "announce a commit"
	done    chan struct{} // closed by shutdown
}

func (w *watcher) init() {
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.signal = make(chan struct{}, 1)
	w.outbox = make(chan struct{}, 1)
	w.done = make(chan struct{})
}

// start runs the goroutines fns once, on first use, so that a store that
// never waits holds no LISTEN connection and one that never writes sends no
// notifications.
func (w *watcher) start(started *bool, fns ...func(ctx context.Context)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return store.ErrClosed
	}
	if !*started {
		*started = true
		for _, fn := range fns {
			w.wg.Go(func() { fn(w.ctx) })
		}
	}
	return nil
}

// shutdown releases the waiters and stops the goroutines, and waits for them.
func (w *watcher) shutdown() {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.done)
		w.cancel()
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// kick tells the watch goroutine that the head may have moved. It never
// blocks: signals that arrive while one is pending merge into it.
func (w *watcher) kick() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// observe records a head read by anyone and wakes the waiters if it is new;
// it reports whether it was. The head never moves back (the horizon only
// rises), so the maximum is the current head.
func (w *watcher) observe(head event.Position) bool {
	for {
		cur := w.seen.Load()
		if uint64(head) <= cur {
			return false
		}
		if w.seen.CompareAndSwap(cur, uint64(head)) {
			break
		}
	}
	w.wake.Publish()
	return true
}

// watch reads the head whenever it may have moved and someone waits. A
// notification says that a transaction with events committed, but not that
// the horizon passed it (an older transaction may still be open), and the
// horizon also rises when a transaction without events ends, which sends no
// notification. So a signal that finds the head where it was starts a chase:
// re-reads after 10 ms, 20 ms, ... until the head moves or the delay
// reaches the poll interval. The poll covers the rest (a lost notification).
func (s *Store) watch(ctx context.Context) {
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	chase := time.NewTimer(time.Hour)
	chase.Stop()
	defer chase.Stop()
	var chaseDelay time.Duration // 0: not chasing
	for {
		signalled := false
		select {
		case <-ctx.Done():
			return
		case <-s.w.signal:
			signalled = true
		case <-chase.C:
			signalled = true
		case <-tick.C:
		}
		if s.w.waiters.Load() == 0 {
			chaseDelay = 0
			continue
		}
		var head int64
		qctx, cancel := context.WithTimeout(ctx, max(10*s.poll, 5*time.Second))
		err := s.pool.QueryRow(qctx, s.q.head).Scan(&head)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("pgstore: reading the log head failed", "schema", s.schema, "error", err)
			}
			continue
		}
		switch {
		case s.w.observe(event.Position(head)):
			chaseDelay = 0
		case signalled:
			chaseDelay = max(2*chaseDelay, 10*time.Millisecond)
			if chaseDelay < s.poll {
				chase.Reset(chaseDelay)
			} else {
				chaseDelay = 0 // the poll takes over
			}
		}
	}
}

// listen holds the store's LISTEN connection, reconnecting with backoff when
// it breaks. The connection is taken out of the pool (hijacked) because it
// lives as long as the store and must not be reset by the pool.
func (s *Store) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		listened, err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if listened {
			backoff = 100 * time.Millisecond
		}
		s.logger.Warn("pgstore: LISTEN connection failed; polling until it is back",
			"schema", s.schema, "retry_in", backoff, "error", err)
		s.w.kick() // notifications may have been lost
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context) (listened bool, err error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return false, err
	}
	// Commits between the last head read and LISTEN sent no notification
	// that this connection saw.
	s.w.kick()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		s.w.kick()
	}
}

// notifyLoop announces this store's commits to the stores of other
// processes. It runs outside the units of work on purpose: a transaction
// that executes NOTIFY takes a cluster-wide lock at commit and holds it
// through the WAL flush, so notifying inside every unit of work serialises
// all commits (pgbench, 8 clients: about 4,000 commits/s without, 800 with).
// Here commits that arrive while a notification is being sent share the
// next one. A crash between a commit and its notification costs other
// processes at most a poll interval.
func (s *Store) notifyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			select { // a commit just before Close
			case <-s.w.outbox:
				s.sendNotify(context.Background())
			default:
			}
			return
		case <-s.w.outbox:
			s.sendNotify(ctx)
		}
	}
}

func (s *Store) sendNotify(ctx context.Context) {
	nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// A wake-up call needs no durability: committing it asynchronously
	// keeps it from waiting for (and holding the notify lock during) a WAL
	// flush. set_config(..., true) is SET LOCAL for this statement's
	// implicit transaction.
	const notify = `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')`
	if _, err := s.pool.Exec(nctx, notify, s.channel); err != nil && ctx.Err() == nil {
		s.logger.Warn("pgstore: NOTIFY failed; other processes will poll", "schema", s.schema, "error", err)
	}
}
