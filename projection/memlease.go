package projection

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryLeases is the in-memory Leaser. It is also a FencedCheckpoints and
// a ParkStore (it embeds a MemoryCheckpoints), so that one value can be
// given to a runner both as its checkpoint store and as its lease store,
// and SaveFenced checks the lease and saves the checkpoint under one lock.
// It coordinates runners within one process (tests, or several runners of
// one service); across processes use a durable Leaser such as pgstore's.
//
// The zero value is ready to use and reads time.Now; NewMemoryLeases
// takes another clock, so tests can move time by hand.
type MemoryLeases struct {
	MemoryCheckpoints

	mu     sync.Mutex
	now    func() time.Time
	leases map[string]Lease  // the latest lease per name, possibly expired; released ones are removed
	tokens map[string]uint64 // the last token handed out per name
}

var (
	_ Leaser            = (*MemoryLeases)(nil)
	_ FencedCheckpoints = (*MemoryLeases)(nil)
	_ ParkStore         = (*MemoryLeases)(nil)
)

// NewMemoryLeases returns an empty MemoryLeases whose expiry clock is now
// (time.Now when nil).
func NewMemoryLeases(now func() time.Time) *MemoryLeases {
	return &MemoryLeases{now: now}
}

func (s *MemoryLeases) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// live returns the unexpired lease on name. s.mu must be held.
func (s *MemoryLeases) live(name string, now time.Time) (Lease, bool) {
	l, ok := s.leases[name]
	if !ok || !now.Before(l.Expires) {
		return Lease{}, false
	}
	return l, true
}

// Acquire implements Leaser. Bad arguments (empty name or owner, ttl <= 0)
// give an error matching store.ErrInvalid.
func (s *MemoryLeases) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (Lease, error) {
	if err := CheckAcquireArgs(name, owner, ttl); err != nil {
		return Lease{}, err
	}
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	if cur, ok := s.live(name, now); ok {
		if cur.Owner != owner {
			return Lease{}, &LeaseHeldError{Held: cur}
		}
		cur.Expires = now.Add(ttl)
		s.leases[name] = cur
		return cur, nil
	}
	if s.leases == nil {
		s.leases = make(map[string]Lease)
		s.tokens = make(map[string]uint64)
	}
	s.tokens[name]++
	l := Lease{Name: name, Owner: owner, Token: s.tokens[name], Expires: now.Add(ttl)}
	s.leases[name] = l
	return l, nil
}

// fenced returns a *FencedError unless l is the live lease on l.Name.
// s.mu must be held.
func (s *MemoryLeases) fenced(l Lease, now time.Time) error {
	cur, ok := s.live(l.Name, now)
	if ok && cur.Token == l.Token {
		return nil
	}
	return &FencedError{Name: l.Name, Token: l.Token, Current: cur.Token}
}

// Renew implements Leaser.
func (s *MemoryLeases) Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	if err := CheckRenewArgs(l, ttl); err != nil {
		return Lease{}, err
	}
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	if err := s.fenced(l, now); err != nil {
		return Lease{}, err
	}
	cur := s.leases[l.Name]
	cur.Expires = now.Add(ttl)
	s.leases[l.Name] = cur
	return cur, nil
}

// Release implements Leaser.
func (s *MemoryLeases) Release(ctx context.Context, l Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.leases[l.Name]; ok && cur.Token == l.Token {
		delete(s.leases, l.Name)
	}
	return nil
}

// Holder implements Leaser.
func (s *MemoryLeases) Holder(ctx context.Context, name string) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.live(name, s.clock()); ok {
		return l, nil
	}
	return Lease{Name: name}, nil
}

// List implements Leaser.
func (s *MemoryLeases) List(ctx context.Context, prefix string) ([]Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	var out []Lease
	for name := range s.leases {
		if l, ok := s.live(name, now); ok && strings.HasPrefix(name, prefix) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Lease) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// SaveFenced implements FencedCheckpoints: it checks fence and saves cp
// while holding the lease lock, so no Acquire can come in between.
func (s *MemoryLeases) SaveFenced(ctx context.Context, name string, cp Checkpoint, fence Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fenced(fence, s.clock()); err != nil {
		return err
	}
	return s.MemoryCheckpoints.Save(ctx, name, cp)
}
