package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
	"github.com/cqrskit/cqrs/store/pgstore"
)

// TestGapRace has 16 writers commit 10,000+ events in transactions that are
// held open for random times, before and after their events are appended, and
// sometimes rolled back, so transactions with lower positions routinely
// commit after ones with higher positions. A
// follower that reads continuously from its last position with Read and Wait
// must see every committed event exactly once, in position order, and no
// rolled-back one.
//
// Negative control: a naive reader polling "position > last ORDER BY
// position" on the same table at the same time must miss events. (The
// deterministic form is TestHorizonHoldsBackLaterCommits.)
func TestGapRace(t *testing.T) {
	const (
		writers    = 16
		wantEvents = 10_000
	)
	pool := newPool(t, writers+8)
	st := newStore(t, pool, pgstore.WithPollInterval(20*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	owners := store.NewTable[int, int](st, "owners")
	// A slow commit: the events are appended (the position is taken) but
	// the transaction stays open a little longer.
	pgstore.SetBeforeCommit(st, func(context.Context) {
		if rand.IntN(2) == 0 {
			time.Sleep(rand.N(2 * time.Millisecond))
		}
	})
	errRollback := errors.New("rolled back on purpose")

	type id struct{ w, s int }
	var (
		mu         sync.Mutex
		committed  = make(map[id]bool)
		rolledBack = make(map[id]bool)
		// lastCommitted is the highest position a writer committed.
		lastCommitted event.Position
		total         atomic.Int64
		writing       sync.WaitGroup
	)
	for w := range writers {
		writing.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			seq := 0
			for total.Load() < wantEvents && ctx.Err() == nil {
				n := 1 + rng.IntN(3)
				ids := make([]id, n)
				early := rng.IntN(2) == 0
				rollback := rng.IntN(10) == 0
				delay := time.Duration(rng.IntN(3000)) * time.Microsecond
				pos, err := st.Update(ctx, func(tx store.Tx) error {
					if early {
						// Take a transaction id (and a row lock)
						// long before the append.
						if _, err := owners.Put(tx, w, seq); err != nil {
							return err
						}
					}
					for i := range ids {
						seq++
						ids[i] = id{w, seq}
						tx.Record(fmt.Sprint("s", rng.IntN(32)), Tick{Writer: w, Seq: seq})
					}
					time.Sleep(delay)
					if rollback {
						return errRollback
					}
					return nil
				})
				mu.Lock()
				switch {
				case err == nil:
					for _, x := range ids {
						committed[x] = true
					}
					lastCommitted = max(lastCommitted, pos)
					total.Add(int64(n))
				case errors.Is(err, errRollback):
					for _, x := range ids {
						rolledBack[x] = true
					}
				default:
					t.Errorf("writer %d: %v", w, err)
				}
				mu.Unlock()
			}
		})
	}
	allWritten := make(chan struct{})
	go func() { writing.Wait(); close(allWritten) }()

	// The naive reader polls as fast as it can while the writers run.
	naive := newNaiveReader(pool, st.Schema())
	naiveSeen := make(map[event.Position]bool)
	naiveDone := make(chan struct{})
	go func() {
		defer close(naiveDone)
		for {
			select {
			case <-allWritten:
				for _, p := range naive.poll(t) { // a last look
					naiveSeen[p] = true
				}
				return
			default:
			}
			for _, p := range naive.poll(t) {
				naiveSeen[p] = true
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()

	// The follower.
	seen := make(map[id]bool)
	var positions []event.Position
	var after event.Position
	buf := make([]event.Record, 0, 128)
follow:
	for {
		recs, err := st.Read(ctx, after, buf[:0])
		require.NoError(t, err)
		for _, r := range recs {
			require.Greater(t, r.Position, after, "positions must increase")
			tick := r.Data.(Tick)
			x := id{tick.Writer, tick.Seq}
			require.False(t, seen[x], "event %v delivered twice", x)
			seen[x] = true
			positions = append(positions, r.Position)
			after = r.Position
		}
		if len(recs) > 0 {
			continue
		}
		select {
		case <-allWritten:
			// Done once the writers are and the follower has read up to
			// the last commit. Not "once Head is reached": a transaction
			// of another test can hold the readable head below commits
			// for a moment. A lost event makes ctx run out instead.
			mu.Lock()
			last := lastCommitted
			mu.Unlock()
			if after >= last {
				break follow
			}
		default:
		}
		wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err = st.Wait(wctx, after)
		wcancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			require.NoError(t, err)
		}
	}
	<-naiveDone
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(committed), wantEvents)
	require.NotEmpty(t, rolledBack)
	missing := 0
	for x := range committed {
		if !seen[x] {
			missing++
		}
	}
	var ghosts int
	for x := range seen {
		if rolledBack[x] {
			ghosts++
		}
	}
	assert.Zero(t, missing, "committed events the follower never saw")
	assert.Zero(t, ghosts, "rolled-back events the follower saw")
	assert.Len(t, seen, len(committed))

	naiveMissed := len(committed) - len(naiveSeen)
	t.Logf("%d events committed (%d rolled back) by %d writers; follower saw %d; naive reader missed %d",
		len(committed), len(rolledBack), writers, len(seen), naiveMissed)
	assert.Positive(t, naiveMissed, "negative control: the naive position > last reader should have skipped events")
	// Everything the naive reader did see was real.
	followed := make(map[event.Position]bool, len(positions))
	for _, p := range positions {
		followed[p] = true
	}
	for p := range naiveSeen {
		assert.True(t, followed[p], "naive reader saw %v, which the follower did not", p)
	}
}
