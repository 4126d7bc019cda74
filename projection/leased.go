package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cqrskit/cqrs/event"
)

// ErrUnfencedCheckpoints: the runner has leases (WithLeases) but its
// checkpoint store cannot save under a fencing token (it is not a
// FencedCheckpoints), so a paused owner could move a checkpoint after its
// lease was taken over. Add returns it wrapped, naming the projector.
var ErrUnfencedCheckpoints = errors.New("projection: leases need a checkpoint store that implements projection.FencedCheckpoints")

// errNotOwner: Rebuild or Replay of a leased projector this runner does
// not hold.
var errNotOwner = errors.New("projection: this runner does not hold the projector's lease")

func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	return fmt.Sprintf("%s/%d/%04x", host, os.Getpid(), rand.Uint32()&0xffff)
}

// Owner returns the name under which this runner holds leases (see
// WithLeases), or "" without leases.
func (r *Runner) Owner() string { return r.owner }

// leaseState is a leased projector's view of its lease.
type leaseState struct {
	mu     sync.Mutex
	held   Lease // the lease this runner holds; Token 0 in standby
	holder Lease // in standby: the holder last seen (Owner "" when free)
	// until is when the held lease lapses at the latest by this process's
	// clock (UnixNano): the time the last successful Acquire or Renew was
	// sent, plus the TTL. Delivery stops once it has passed, even before
	// the store says so: a process that was paused (SIGSTOP, a long GC
	// pause) notices on waking up, before it applies another record.
	until atomic.Int64
}

// lapsed reports whether the held lease may have lapsed.
func (ls *leaseState) lapsed() bool { return time.Now().UnixNano() >= ls.until.Load() }

func (ls *leaseState) get() (held, holder Lease) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.held, ls.holder
}

func (ls *leaseState) set(held, holder Lease) {
	ls.mu.Lock()
	ls.held, ls.holder = held, holder
	ls.mu.Unlock()
}

func (ls *leaseState) owns() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.held.Token != 0
}

// group balances the partitions of one projector over the live runners:
// each runner registers a membership lease under prefix and holds at most
// share = ceil(n / live members) partitions.
type group struct {
	name   string
	prefix string // of the membership leases: name + "/members/"
	n      int
	held   atomic.Int32 // partitions held or being acquired by this runner
	share  atomic.Int32
	member Lease // this runner's membership; only the balancer touches it
}

// reserve claims a slot for acquiring one more partition, if this runner
// is below its share.
func (g *group) reserve() bool {
	for {
		h := g.held.Load()
		if h >= g.share.Load() {
			return false
		}
		if g.held.CompareAndSwap(h, h+1) {
			return true
		}
	}
}

// giveUp reports whether the caller should release its partition because
// this runner holds more than its share; it then counts it as released.
func (g *group) giveUp() bool {
	for {
		h := g.held.Load()
		if h <= g.share.Load() {
			return false
		}
		if g.held.CompareAndSwap(h, h-1) {
			return true
		}
	}
}

// refresh renews this runner's membership and recomputes the share.
func (r *Runner) refreshGroup(ctx context.Context, g *group) {
	m, err := r.leases.Acquire(ctx, g.prefix+r.owner, r.owner, r.term())
	if err != nil {
		return // keep the last share; the next round tries again
	}
	g.member = m
	live, err := r.leases.List(ctx, g.prefix)
	if err != nil || len(live) == 0 {
		return
	}
	g.share.Store(int32((g.n + len(live) - 1) / len(live)))
}

// balance keeps the runner's membership of g alive until ctx ends, then
// releases it so the other runners take over its share at once.
func (r *Runner) balance(ctx context.Context, g *group) {
	defer r.wg.Done()
	for sleep(ctx, r.ttl/3) {
		r.refreshGroup(ctx, g)
	}
	if g.member.Token != 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.ttl)
		_ = r.leases.Release(rctx, g.member)
		cancel()
	}
}

// term is how long the runner takes a lease for in the store: the TTL
// less the longest pause between a standby's attempts (see poll), so that
// a standby takes over within the TTL of the owner's death: the lease
// lapses at most term after it, and a standby tries again at most ttl/8
// later.
func (r *Runner) term() time.Duration { return r.ttl - r.ttl/8 }

// poll is how long a standby waits between attempts to acquire: ttl/16
// plus up to as much again of jitter, so standbys do not move in step.
func (r *Runner) poll() time.Duration {
	base := r.ttl / 16
	return base + rand.N(base+1)
}

// ctxFor returns ctx with what pj's handlers must see: its partition and,
// when it holds its lease, the fence.
func (pj *proj) ctxFor(ctx context.Context) context.Context {
	if pj.part != nil {
		ctx = WithPartition(ctx, *pj.part)
	}
	if pj.lease != nil {
		if held, _ := pj.lease.get(); held.Token != 0 {
			ctx = WithFence(ctx, held)
		}
	}
	return ctx
}

// loadCheckpoint reads pj's checkpoint from where it is kept.
func (pj *proj) loadCheckpoint(ctx context.Context) (Checkpoint, error) {
	if pj.selfCP != nil {
		return pj.selfCP.LoadCheckpoint(pj.ctxFor(ctx))
	}
	return pj.r.cps.Load(ctx, pj.name)
}

// followLeased is a leased projector's goroutine: it stands by until it
// acquires the lease, delivers while it holds it, and stands by again when
// it loses it.
func (pj *proj) followLeased(ctx, handlerCtx context.Context) {
	defer func() {
		pj.exited.Store(true)
		pj.notify.Publish()
		pj.r.wg.Done()
	}()
	for ctx.Err() == nil {
		l, ok := pj.standby(ctx)
		if !ok {
			return
		}
		pj.own(ctx, handlerCtx, l)
	}
}

// standby tries to acquire pj's lease every poll interval until it does
// (ok) or ctx ends. Meanwhile it follows the owner's checkpoint, so Status
// and WaitFor show the shared view's progress in every process.
func (pj *proj) standby(ctx context.Context) (Lease, bool) {
	r := pj.r
	for {
		g := pj.group
		if g == nil || g.reserve() {
			actx, cancel := context.WithTimeout(ctx, r.ttl)
			sent := time.Now()
			l, err := r.leases.Acquire(actx, pj.name, r.owner, r.term())
			cancel()
			if err == nil {
				pj.lease.until.Store(sent.Add(r.term()).UnixNano())
				return l, true
			}
			if g != nil {
				g.held.Add(-1)
			}
			var he *LeaseHeldError
			switch {
			case errors.As(err, &he):
				pj.lease.set(Lease{}, he.Held)
				pj.setInfra(nil)
			case ctx.Err() != nil:
				return Lease{}, false
			default:
				pj.setInfra(err)
			}
		} else if h, err := r.leases.Holder(ctx, pj.name); err == nil {
			pj.lease.set(Lease{}, h)
		}
		if cp, err := pj.loadCheckpoint(ctx); err == nil && uint64(cp.Position) > pj.pos.Load() {
			pj.pos.Store(uint64(cp.Position))
		}
		pj.notify.Publish()
		if !sleep(ctx, r.poll()) {
			return Lease{}, false
		}
	}
}

// errLeaseLost cancels an owner's contexts when its lease was taken over
// or could not be renewed in time.
var errLeaseLost = errors.New("projection: lease lost")

// own delivers to pj while l is held: it loads the checkpoint, keeps the
// lease renewed, and returns when ctx ends (the lease is released at once),
// when the lease is lost (renewal or a write was fenced: the batch in hand
// is dropped), or when the partition is handed to another runner.
func (pj *proj) own(ctx, handlerCtx context.Context, l Lease) {
	r := pj.r
	pj.lease.set(l, l)
	leaseCtx, lose := context.WithCancelCause(ctx)
	hctx, hcancel := context.WithCancel(handlerCtx)
	hctx = pj.ctxFor(hctx)
	lost := func(err error) {
		lose(err)
		hcancel() // the handler in hand must not write on
	}
	renewed := make(chan struct{})
	go pj.renew(leaseCtx, l, lost, renewed)
	counted := true // this partition counts in pj.group.held
	defer func() {
		lose(nil)
		<-renewed
		hcancel()
		wasLost := context.Cause(leaseCtx) != nil && !errors.Is(context.Cause(leaseCtx), context.Canceled)
		if !wasLost {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.ttl)
			_ = r.leases.Release(rctx, l)
			cancel()
		} else {
			// The new owner decides now; a Stop here is not ours to keep.
			pj.stopped.Store(nil)
			if r.logger != nil {
				r.logger.LogAttrs(ctx, slog.LevelWarn, "projection: lease lost", slog.String("projector", pj.name),
					slog.Uint64("token", l.Token), slog.Any("cause", context.Cause(leaseCtx)))
			}
		}
		if counted && pj.group != nil {
			pj.group.held.Add(-1)
		}
		pj.lease.set(Lease{}, Lease{Name: pj.name})
		pj.notify.Publish()
	}()

	// Start from the shared checkpoint: the previous owner may have gone
	// further than this process saw.
	failures := 0
	for {
		err := pj.start(leaseCtx)
		if err == nil {
			break
		}
		if leaseCtx.Err() != nil || errors.Is(err, ErrFenced) {
			return
		}
		failures++
		pj.setInfra(err)
		pj.notify.Publish()
		if !sleep(leaseCtx, InfraBackoff(failures)) {
			return
		}
	}
	failures = 0
	for leaseCtx.Err() == nil {
		pj.mu.Lock()
		more, err := pj.step(leaseCtx, hctx, endOfLog)
		pj.mu.Unlock()
		if errors.Is(err, ErrFenced) {
			lost(err)
			return
		}
		if pj.group != nil && pj.group.giveUp() {
			counted = false
			return
		}
		if err == nil && !more {
			// Wake up now and then to check the share even when idle.
			wctx, cancel := context.WithTimeout(leaseCtx, r.ttl/3)
			err = r.events.Wait(wctx, event.Position(pj.pos.Load()))
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && leaseCtx.Err() == nil {
				err = nil
			}
		}
		switch {
		case leaseCtx.Err() != nil:
			return
		case errors.Is(err, ErrStopped):
			failures = 0
			select {
			case <-pj.resume:
			case <-leaseCtx.Done():
				return
			}
		case err != nil:
			failures++
			pj.setInfra(err)
			pj.notify.Publish()
			if !sleep(leaseCtx, InfraBackoff(failures)) {
				return
			}
		default:
			failures = 0
		}
	}
}

// start loads pj's checkpoint and dead letters as the new owner, and
// rebuilds it when its version changed.
func (pj *proj) start(ctx context.Context) error {
	r := pj.r
	cp, err := pj.loadCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("projection: load checkpoint of %s: %w", pj.name, err)
	}
	pj.pos.Store(uint64(cp.Position))
	if r.parks != nil {
		if err := r.loadParked(ctx, pj); err != nil {
			return fmt.Errorf("projection: load dead letters of %s: %w", pj.name, err)
		}
	}
	pj.setInfra(nil)
	pj.notify.Publish()
	if cp.Position > 0 && cp.Version != pj.version {
		if _, ok := pj.p.(Rebuilder); !ok || pj.part != nil {
			pj.halt(fmt.Errorf("%w: %s changed version %d -> %d and must be rebuilt", errNotRebuildable, pj.name, cp.Version, pj.version), cp.Position)
			return nil
		}
		if err := r.rebuild(ctx, pj); err != nil && !errors.Is(err, ErrStopped) {
			return err
		}
	}
	return nil
}

// renew renews l every ttl/3 until ctx ends. It calls lost when the lease
// was taken over (ErrFenced) or when no renewal succeeded for a whole term
// (the store was unreachable: the lease has lapsed, or will before this
// runner could tell).
func (pj *proj) renew(ctx context.Context, l Lease, lost func(error), done chan<- struct{}) {
	defer close(done)
	r := pj.r
	last := time.Now() // when the last successful renewal was sent
	for sleep(ctx, r.ttl/3) {
		sent := time.Now()
		// A store that hangs must not keep this runner believing it owns
		// the lease: each try is bounded, and a whole ttl without success
		// counts as lost.
		rctx, cancel := context.WithTimeout(ctx, r.ttl/3)
		nl, err := r.leases.Renew(rctx, l, r.term())
		cancel()
		switch {
		case err == nil:
			l, last = nl, sent
			pj.lease.until.Store(sent.Add(r.term()).UnixNano())
			pj.lease.set(nl, nl)
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrFenced):
			lost(fmt.Errorf("%w: %w", errLeaseLost, err))
			return
		case time.Since(last) >= r.term():
			lost(fmt.Errorf("%w: not renewed for %v: %w", errLeaseLost, r.term(), err))
			return
		}
	}
}
