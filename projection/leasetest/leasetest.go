package leasetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
)

// Target is what the suite tests: a lease store and the fenced checkpoint
// store whose SaveFenced checks its leases. They are usually one value
// (projection.MemoryLeases) or two views of one database.
type Target struct {
	Leases      projection.Leaser
	Checkpoints projection.FencedCheckpoints
}

// Short is the TTL the expiry cases use, and Long the one for leases that
// must not expire during a case. Wait is how long the suite gives a lease
// of TTL Short to lapse before it fails the case.
const (
	Short = 300 * time.Millisecond
	Long  = 30 * time.Second
	Wait  = 5 * time.Second
)

// Run runs the suite. newTarget returns an empty target for one subtest
// (register cleanup with t.Cleanup); it is called once per subtest,
// sequentially.
//
// It checks that Acquire of a free name succeeds with a token above zero
// and is seen by Holder; that another owner then gets a *LeaseHeldError
// (matching ErrLeaseHeld) naming the holder, while the holder re-acquires
// with the same token; that a lease not renewed expires and another owner
// then acquires with a greater token; that renewing keeps it (same token)
// past several TTLs; that Release frees it at once and is harmless when
// repeated or stale; that tokens strictly increase over many handovers;
// that List returns the live leases under a prefix in name order; that of
// many concurrent acquirers exactly one wins (run with -race); that an
// owner whose lease was taken over gets a *FencedError (matching ErrFenced,
// with the new token as Current) from Renew and from SaveFenced, which
// saves nothing; that a lease that expired untaken cannot be renewed
// (Current 0); that SaveFenced with the live lease saves and still never
// moves a checkpoint backwards; that bad arguments match store.ErrInvalid;
// and that a cancelled context either is ignored or fails the call with
// context.Canceled.
func Run(t *testing.T, newTarget func(t *testing.T) Target) {
	ctx := context.Background()
	acquire := func(t *testing.T, l projection.Leaser, name, owner string, ttl time.Duration) projection.Lease {
		t.Helper()
		got, err := l.Acquire(ctx, name, owner, ttl)
		if err != nil {
			t.Fatalf("Acquire(%q, %q): %v", name, owner, err)
		}
		if got.Name != name || got.Owner != owner || got.Token == 0 {
			t.Fatalf("Acquire(%q, %q) = %+v, want Name, Owner and a token above 0", name, owner, got)
		}
		return got
	}
	holder := func(t *testing.T, l projection.Leaser, name string) projection.Lease {
		t.Helper()
		h, err := l.Holder(ctx, name)
		if err != nil {
			t.Fatalf("Holder(%q): %v", name, err)
		}
		if h.Name != name {
			t.Fatalf("Holder(%q).Name = %q", name, h.Name)
		}
		return h
	}
	wantHeld := func(t *testing.T, err error, by projection.Lease) {
		t.Helper()
		var he *projection.LeaseHeldError
		if !errors.As(err, &he) || !errors.Is(err, projection.ErrLeaseHeld) {
			t.Fatalf("got %v, want a *LeaseHeldError matching ErrLeaseHeld", err)
		}
		if he.Held.Name != by.Name || he.Held.Owner != by.Owner || he.Held.Token != by.Token {
			t.Errorf("LeaseHeldError.Held = %+v, want the lease %+v", he.Held, by)
		}
	}
	wantFenced := func(t *testing.T, what string, err error, l projection.Lease, current uint64) {
		t.Helper()
		var fe *projection.FencedError
		if !errors.As(err, &fe) || !errors.Is(err, projection.ErrFenced) {
			t.Fatalf("%s: got %v, want a *FencedError matching ErrFenced", what, err)
		}
		if fe.Name != l.Name || fe.Token != l.Token || fe.Current != current {
			t.Errorf("%s: FencedError = %+v, want Name %q, Token %d, Current %d", what, *fe, l.Name, l.Token, current)
		}
	}
	// takeOver acquires name for owner once the lease in the way lapses.
	takeOver := func(t *testing.T, l projection.Leaser, name, owner string, ttl time.Duration) projection.Lease {
		t.Helper()
		deadline := time.Now().Add(Wait)
		for {
			got, err := l.Acquire(ctx, name, owner, ttl)
			if err == nil {
				return got
			}
			if !errors.Is(err, projection.ErrLeaseHeld) {
				t.Fatalf("Acquire(%q, %q): %v", name, owner, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease %q still held after %v by %v (its TTL was %v)", name, Wait, err, Short)
			}
			time.Sleep(Short / 10)
		}
	}

	t.Run("AcquireFree", func(t *testing.T) {
		tg := newTarget(t)
		if h := holder(t, tg.Leases, "p"); h.Owner != "" || h.Token != 0 {
			t.Errorf("Holder of a never-acquired name = %+v, want only Name", h)
		}
		a := acquire(t, tg.Leases, "p", "a", Long)
		if h := holder(t, tg.Leases, "p"); h.Owner != "a" || h.Token != a.Token {
			t.Errorf("Holder = %+v, want owner a with token %d", h, a.Token)
		}
		if a.Expires.IsZero() {
			t.Errorf("Acquire returned no expiry: %+v", a)
		}
	})

	t.Run("HeldByAnother", func(t *testing.T) {
		tg := newTarget(t)
		a := acquire(t, tg.Leases, "p", "a", Long)
		_, err := tg.Leases.Acquire(ctx, "p", "b", Long)
		wantHeld(t, err, a)
		again := acquire(t, tg.Leases, "p", "a", Long)
		if again.Token != a.Token {
			t.Errorf("the holder's Acquire changed the token %d -> %d, want it kept (a renewal)", a.Token, again.Token)
		}
		if h := holder(t, tg.Leases, "p"); h.Owner != "a" {
			t.Errorf("Holder = %+v after a refused Acquire, want a", h)
		}
	})

	t.Run("ExpiryAndHandover", func(t *testing.T) {
		tg := newTarget(t)
		a := acquire(t, tg.Leases, "p", "a", Short)
		_, err := tg.Leases.Acquire(ctx, "p", "b", Long)
		wantHeld(t, err, a)
		b := takeOver(t, tg.Leases, "p", "b", Long)
		if b.Token <= a.Token {
			t.Errorf("new owner's token %d is not above the expired one %d", b.Token, a.Token)
		}
		if h := holder(t, tg.Leases, "p"); h.Owner != "b" || h.Token != b.Token {
			t.Errorf("Holder = %+v, want b with token %d", h, b.Token)
		}
		_, err = tg.Leases.Renew(ctx, a, Long)
		wantFenced(t, "stale Renew", err, a, b.Token)
		// The stale owner cannot take it back while b holds it.
		_, err = tg.Leases.Acquire(ctx, "p", "a", Long)
		wantHeld(t, err, b)
	})

	t.Run("Renewal", func(t *testing.T) {
		tg := newTarget(t)
		a := acquire(t, tg.Leases, "p", "a", Short)
		for end := time.Now().Add(3 * Short); time.Now().Before(end); {
			time.Sleep(Short / 4)
			r, err := tg.Leases.Renew(ctx, a, Short)
			if err != nil {
				t.Fatalf("Renew of a live lease: %v", err)
			}
			if r.Token != a.Token || r.Owner != "a" || r.Name != "p" {
				t.Fatalf("Renew = %+v, want the same name, owner and token as %+v", r, a)
			}
			a = r
			if _, err := tg.Leases.Acquire(ctx, "p", "b", Long); !errors.Is(err, projection.ErrLeaseHeld) {
				t.Fatalf("Acquire by b of a renewed lease: %v, want ErrLeaseHeld", err)
			}
		}
		if err := tg.Checkpoints.SaveFenced(ctx, "p", projection.Checkpoint{Position: 3}, a); err != nil {
			t.Errorf("SaveFenced with a renewed lease: %v", err)
		}
	})

	t.Run("ExpiredUntakenCannotRenew", func(t *testing.T) {
		tg := newTarget(t)
		a := acquire(t, tg.Leases, "p", "a", Short)
		time.Sleep(2 * Short)
		_, err := tg.Leases.Renew(ctx, a, Long)
		wantFenced(t, "Renew after expiry", err, a, 0)
		err = tg.Checkpoints.SaveFenced(ctx, "p", projection.Checkpoint{Position: 1}, a)
		wantFenced(t, "SaveFenced after expiry", err, a, 0)
		if h := holder(t, tg.Leases, "p"); h.Owner != "" {
			t.Errorf("Holder of an expired lease = %+v, want free", h)
		}
		// Acquiring again, even by the same owner, is a new epoch.
		again := acquire(t, tg.Leases, "p", "a", Long)
		if again.Token <= a.Token {
			t.Errorf("token after expiry %d, want above %d", again.Token, a.Token)
		}
	})

	t.Run("Release", func(t *testing.T) {
		tg := newTarget(t)
		a := acquire(t, tg.Leases, "p", "a", Long)
		if err := tg.Leases.Release(ctx, a); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if h := holder(t, tg.Leases, "p"); h.Owner != "" {
			t.Errorf("Holder after Release = %+v, want free", h)
		}
		b := acquire(t, tg.Leases, "p", "b", Long) // at once, no expiry wait
		if b.Token <= a.Token {
			t.Errorf("token after Release %d, want above %d", b.Token, a.Token)
		}
		// A stale Release must not free b's lease.
		if err := tg.Leases.Release(ctx, a); err != nil {
			t.Errorf("second (stale) Release: %v", err)
		}
		if h := holder(t, tg.Leases, "p"); h.Owner != "b" || h.Token != b.Token {
			t.Errorf("Holder after a stale Release = %+v, want b with token %d", h, b.Token)
		}
		_, err := tg.Leases.Renew(ctx, a, Long)
		wantFenced(t, "Renew of a released lease", err, a, b.Token)
	})

	t.Run("TokensIncrease", func(t *testing.T) {
		tg := newTarget(t)
		var last uint64
		for i := range 10 {
			owner := fmt.Sprintf("o%d", i%3)
			l := acquire(t, tg.Leases, "p", owner, Long)
			if l.Token <= last {
				t.Fatalf("handover %d: token %d, want above %d", i, l.Token, last)
			}
			last = l.Token
			if err := tg.Leases.Release(ctx, l); err != nil {
				t.Fatalf("Release: %v", err)
			}
		}
	})

	t.Run("NamesIndependent", func(t *testing.T) {
		tg := newTarget(t)
		acquire(t, tg.Leases, "p/p0of2", "a", Long)
		acquire(t, tg.Leases, "p/p1of2", "b", Long)
		if h := holder(t, tg.Leases, "p"); h.Owner != "" {
			t.Errorf("Holder(p) = %+v, want free", h)
		}
	})

	t.Run("List", func(t *testing.T) {
		tg := newTarget(t)
		acquire(t, tg.Leases, "g/members/c", "c", Long)
		acquire(t, tg.Leases, "g/members/a", "a", Long)
		gone := acquire(t, tg.Leases, "g/members/b", "b", Long)
		acquire(t, tg.Leases, "g/members/d", "d", Short)
		acquire(t, tg.Leases, "h/members/x", "x", Long)
		acquire(t, tg.Leases, "g/other", "y", Long)
		if err := tg.Leases.Release(ctx, gone); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * Short) // d expires
		got, err := tg.Leases.List(ctx, "g/members/")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		var names []string
		for _, l := range got {
			names = append(names, l.Name+"="+l.Owner)
			if l.Token == 0 || l.Expires.IsZero() {
				t.Errorf("List entry %+v lacks a token or expiry", l)
			}
		}
		if want := []string{"g/members/a=a", "g/members/c=c"}; fmt.Sprint(names) != fmt.Sprint(want) {
			t.Errorf("List(g/members/) = %v, want %v (live ones, in name order)", names, want)
		}
		if got, err := tg.Leases.List(ctx, "none/"); err != nil || len(got) != 0 {
			t.Errorf("List of an unused prefix = %v, %v; want none", got, err)
		}
	})

	t.Run("ConcurrentAcquirers", func(t *testing.T) {
		tg := newTarget(t)
		const n = 12
		var last uint64
		for round := range 3 {
			var wg sync.WaitGroup
			leases := make([]projection.Lease, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					leases[i], errs[i] = tg.Leases.Acquire(ctx, "p", fmt.Sprintf("o%d", i), Long)
				})
			}
			close(start)
			wg.Wait()
			var won []projection.Lease
			for i, err := range errs {
				if err == nil {
					won = append(won, leases[i])
				} else if !errors.Is(err, projection.ErrLeaseHeld) {
					t.Fatalf("round %d: Acquire: %v, want nil or ErrLeaseHeld", round, err)
				}
			}
			if len(won) != 1 {
				t.Fatalf("round %d: %d acquirers won, want exactly 1: %+v", round, len(won), won)
			}
			for _, err := range errs {
				if err != nil {
					wantHeld(t, err, won[0])
				}
			}
			if won[0].Token <= last {
				t.Errorf("round %d: token %d, want above %d", round, won[0].Token, last)
			}
			last = won[0].Token
			if err := tg.Leases.Release(ctx, won[0]); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("FencedSave", func(t *testing.T) {
		tg := newTarget(t)
		cs := tg.Checkpoints
		a := acquire(t, tg.Leases, "p", "a", Short)
		if err := cs.SaveFenced(ctx, "p", projection.Checkpoint{Position: 5, Version: 1}, a); err != nil {
			t.Fatalf("SaveFenced by the holder: %v", err)
		}
		if cp, err := cs.Load(ctx, "p"); err != nil || cp != (projection.Checkpoint{Position: 5, Version: 1}) {
			t.Fatalf("Load after SaveFenced = %+v, %v", cp, err)
		}
		b := takeOver(t, tg.Leases, "p", "b", Long)
		err := cs.SaveFenced(ctx, "p", projection.Checkpoint{Position: 9, Version: 1}, a)
		wantFenced(t, "stale SaveFenced", err, a, b.Token)
		if cp, _ := cs.Load(ctx, "p"); cp.Position != 5 {
			t.Errorf("a refused SaveFenced changed the checkpoint to %+v", cp)
		}
		if err := cs.SaveFenced(ctx, "p", projection.Checkpoint{Position: 7, Version: 1}, b); err != nil {
			t.Fatalf("SaveFenced by the new holder: %v", err)
		}
		err = cs.SaveFenced(ctx, "p", projection.Checkpoint{Position: 6, Version: 1}, b)
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("SaveFenced backwards: %v, want store.ErrConflict", err)
		}
		if cp, _ := cs.Load(ctx, "p"); cp.Position != 7 {
			t.Errorf("checkpoint = %+v, want position 7", cp)
		}
		// A released lease fences too.
		if err := tg.Leases.Release(ctx, b); err != nil {
			t.Fatal(err)
		}
		err = cs.SaveFenced(ctx, "p", projection.Checkpoint{Position: 8, Version: 1}, b)
		wantFenced(t, "SaveFenced after Release", err, b, 0)
		// The fence and the checkpoint may have different names (one
		// lease guarding several checkpoints).
		c := acquire(t, tg.Leases, "group", "c", Long)
		if err := cs.SaveFenced(ctx, "p", projection.Checkpoint{Position: 8, Version: 1}, c); err != nil {
			t.Errorf("SaveFenced under a lease of another name: %v", err)
		}
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		tg := newTarget(t)
		for _, c := range []struct {
			name, owner string
			ttl         time.Duration
		}{{"", "a", Long}, {"p", "", Long}, {"p", "a", 0}, {"p", "a", -time.Second}} {
			if _, err := tg.Leases.Acquire(ctx, c.name, c.owner, c.ttl); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Acquire(%q, %q, %v): %v, want store.ErrInvalid", c.name, c.owner, c.ttl, err)
			}
		}
		a := acquire(t, tg.Leases, "p", "a", Long)
		if _, err := tg.Leases.Renew(ctx, a, 0); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Renew with ttl 0: %v, want store.ErrInvalid", err)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		tg := newTarget(t)
		a := acquire(t, tg.Leases, "p", "a", Long)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		ok := func(what string, err error) {
			t.Helper()
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: %v, want nil or context.Canceled", what, err)
			}
		}
		_, err := tg.Leases.Acquire(cctx, "q", "a", Long)
		ok("Acquire", err)
		_, err = tg.Leases.Renew(cctx, a, Long)
		ok("Renew", err)
		_, err = tg.Leases.Holder(cctx, "p")
		ok("Holder", err)
		_, err = tg.Leases.List(cctx, "")
		ok("List", err)
		ok("SaveFenced", tg.Checkpoints.SaveFenced(cctx, "p", projection.Checkpoint{Position: 1}, a))
		ok("Release", tg.Leases.Release(cctx, a))
	})
}
