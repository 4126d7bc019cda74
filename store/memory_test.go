package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

type added struct{ N int }

func (added) EventType() string { return "test.Added" }

type account struct {
	Owner   string
	Balance int
}

func TestTableCRUDAndVersions(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	acc := store.NewTable[string, account](st, "accounts")
	assert.Equal(t, "accounts", acc.Name())
	ctx := context.Background()
	_, err := st.Update(ctx, func(tx store.Tx) error {
		_, _, err := acc.Get(tx, "a")
		var nf *store.NotFoundError
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, "accounts", nf.What)
		assert.True(t, errors.Is(err, store.ErrNotFound))

		require.NoError(t, acc.Insert(tx, "a", account{"ann", 10}))
		v, ver, err := acc.Get(tx, "a")
		require.NoError(t, err)
		assert.Equal(t, account{"ann", 10}, v)
		assert.EqualValues(t, 1, ver)

		err = acc.Insert(tx, "a", account{})
		var ae *store.AlreadyExistsError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "a", ae.Key)
		assert.False(t, errors.Is(err, store.ErrConflict))

		ver, err = acc.PutIf(tx, "a", account{"ann", 20}, 1)
		require.NoError(t, err)
		assert.EqualValues(t, 2, ver)
		_, err = acc.PutIf(tx, "a", account{"ann", 30}, 1)
		assert.ErrorIs(t, err, store.ErrConflict)
		ok, err := acc.Exists(tx, "a")
		assert.True(t, ok)
		assert.NoError(t, err)
		require.NoError(t, acc.Delete(tx, "a"))
		assert.ErrorIs(t, acc.Delete(tx, "a"), store.ErrNotFound)
		ver, err = acc.Put(tx, "b", account{"bob", 1})
		assert.EqualValues(t, 1, ver)
		return err
	})
	require.NoError(t, err)
}

func TestUpdateIsAtomic(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	acc := store.NewTable[string, account](st, "accounts")
	ctx := context.Background()
	_, err := st.Update(ctx, func(tx store.Tx) error {
		_, err := acc.Put(tx, "a", account{"ann", 1})
		tx.Record("account/a", added{1})
		return err
	})
	require.NoError(t, err)

	boom := errors.New("boom")
	_, err = st.Update(ctx, func(tx store.Tx) error {
		_, _ = acc.Put(tx, "a", account{"ann", 99})
		_, _ = acc.Put(tx, "new", account{"x", 1})
		_ = acc.Delete(tx, "a")
		_, _ = acc.Put(tx, "a", account{"ann", 100})
		tx.Record("account/a", added{99})
		return boom
	})
	assert.ErrorIs(t, err, boom)
	assert.Panics(t, func() {
		_, _ = st.Update(ctx, func(tx store.Tx) error {
			_, _ = acc.Put(tx, "a", account{"ann", -1})
			tx.Record("account/a", added{-1})
			panic("bug")
		})
	})
	head, _ := st.Head(ctx)
	assert.EqualValues(t, 1, head)
	_, err = st.Update(ctx, func(tx store.Tx) error {
		v, err := tx.StreamVersion("account/a")
		assert.EqualValues(t, 1, v)
		return err
	})
	require.NoError(t, err)
	_, err = st.Update(ctx, func(tx store.Tx) error {
		v, ver, err := acc.Get(tx, "a")
		assert.Equal(t, account{"ann", 1}, v)
		assert.EqualValues(t, 1, ver, "the rolled back writes did not bump the version")
		_, _, nerr := acc.Get(tx, "new")
		assert.ErrorIs(t, nerr, store.ErrNotFound)
		return err
	})
	require.NoError(t, err)
}

func TestStreamsVersionsPositionsAndMetadata(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := store.NewMemory(store.WithClock(func() time.Time { return now }))
	defer st.Close()
	ctx := event.WithMetadata(context.Background(), event.Metadata{CorrelationID: "c1"})
	pos, err := st.Update(ctx, func(tx store.Tx) error {
		tx.Record("s/1", added{1})
		tx.Record("s/2", added{2})
		v, _ := tx.StreamVersion("s/1")
		assert.EqualValues(t, 1, v, "counts events recorded in this unit of work")
		assert.NoError(t, tx.ExpectVersion("s/1", 1))
		tx.Record("s/1", added{3})
		return nil
	})
	require.NoError(t, err)
	assert.EqualValues(t, 3, pos)
	pos, err = st.Update(ctx, func(tx store.Tx) error { return nil })
	require.NoError(t, err)
	assert.EqualValues(t, 3, pos, "a unit of work without events returns the head")

	_, err = st.Update(ctx, func(tx store.Tx) error { return tx.ExpectVersion("s/1", 5) })
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "s/1", ce.Key)
	assert.EqualValues(t, 5, ce.Expected)
	assert.EqualValues(t, 2, ce.Actual)

	recs, err := st.Read(ctx, 0, make([]event.Record, 0, 10))
	require.NoError(t, err)
	require.Len(t, recs, 3)
	want := []struct {
		stream string
		ver    uint64
		n      int
	}{{"s/1", 1, 1}, {"s/2", 1, 2}, {"s/1", 2, 3}}
	for i, r := range recs {
		assert.EqualValues(t, i+1, r.Position)
		assert.Equal(t, want[i].stream, r.Stream)
		assert.Equal(t, want[i].ver, r.Version)
		assert.Equal(t, added{want[i].n}, r.Data)
		assert.Equal(t, "test.Added", r.Type)
		assert.Equal(t, now, r.Time)
		assert.Equal(t, "c1", r.Metadata.CorrelationID)
		assert.NotZero(t, r.ID)
	}
	assert.NotEqual(t, recs[0].ID, recs[1].ID)
}

func TestLogReadResumesAcrossSegments(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	ctx := context.Background()
	const n = 10_000 // spans several segments
	for i := 0; i < n; i += 100 {
		_, err := st.Update(ctx, func(tx store.Tx) error {
			for j := range 100 {
				tx.Record(fmt.Sprint("s/", j), added{i + j})
			}
			return nil
		})
		require.NoError(t, err)
	}
	var after event.Position
	buf := make([]event.Record, 0, 333)
	seen := 0
	for {
		recs, err := st.Read(ctx, after, buf[:0])
		require.NoError(t, err)
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			require.Equal(t, after+1, r.Position)
			require.Equal(t, added{int(r.Position) - 1}, r.Data)
			after = r.Position
			seen++
		}
	}
	assert.Equal(t, n, seen)
	recs, _ := st.Read(ctx, 5, nil)
	assert.Len(t, recs, store.DefaultReadBatch, "a dst without spare capacity gets a default batch")
}

func TestWaitWakesOnCommitAndHonoursContextAndClose(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- st.Wait(ctx, 0) }()
	time.Sleep(10 * time.Millisecond)
	_, err := st.Update(ctx, func(tx store.Tx) error { tx.Record("s", added{}); return nil })
	require.NoError(t, err)
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not wake on commit")
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, st.Wait(cctx, 1), context.DeadlineExceeded)

	go func() { done <- st.Wait(ctx, 1) }()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, st.Close())
	assert.ErrorIs(t, <-done, store.ErrClosed)
	_, err = st.Update(ctx, func(tx store.Tx) error { return nil })
	assert.ErrorIs(t, err, store.ErrClosed)
	_, err = st.Head(ctx)
	assert.ErrorIs(t, err, store.ErrClosed)
	assert.NoError(t, st.Close(), "closing twice is a no-op")
}

func TestCancelledContextWritesNothing(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	_, err := st.Update(ctx, func(tx store.Tx) error { ran = true; return nil })
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, ran)
}

func TestTxMisuseIsLoud(t *testing.T) {
	a, b := store.NewMemory(), store.NewMemory()
	ta := store.NewTable[string, int](a, "t")
	assert.Panics(t, func() { store.NewTable[string, int](a, "t") }, "duplicate table name")
	var leaked store.Tx
	_, _ = a.Update(context.Background(), func(tx store.Tx) error { leaked = tx; return nil })
	assert.Panics(t, func() { _, _ = ta.Put(leaked, "k", 1) }, "use after the unit of work ended")
	assert.Panics(t, func() {
		_, _ = b.Update(context.Background(), func(tx store.Tx) error { _, err := ta.Put(tx, "k", 1); return err })
	}, "table of another store")
}

// Readers of the log run concurrently with writers and never see a torn or
// out-of-order record.
func TestConcurrentReadersAndWriters(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	ctx := context.Background()
	const writers, each = 4, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := st.Update(ctx, func(tx store.Tx) error { tx.Record(fmt.Sprint("w/", w), added{i}); return nil })
				assert.NoError(t, err)
			}
		}()
	}
	stop := make(chan struct{})
	var rg sync.WaitGroup
	for range 2 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			var after event.Position
			versions := map[string]uint64{}
			for {
				recs, err := st.Read(ctx, after, make([]event.Record, 0, 64))
				if !assert.NoError(t, err) {
					return
				}
				for _, r := range recs {
					assert.Equal(t, after+1, r.Position)
					assert.Equal(t, versions[r.Stream]+1, r.Version)
					versions[r.Stream] = r.Version
					assert.Equal(t, added{int(r.Version) - 1}, r.Data)
					after = r.Position
				}
				if after == writers*each {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	wg.Wait()
	rg.Wait()
	close(stop)
}

func TestRecordIDsAreUniqueVersion4(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	ctx := context.Background()
	_, err := st.Update(ctx, func(tx store.Tx) error {
		for i := range 1000 { // spans several refills of the ID buffer
			tx.Record("s", added{i})
		}
		return nil
	})
	require.NoError(t, err)
	recs, err := st.Read(ctx, 0, make([]event.Record, 0, 1000))
	require.NoError(t, err)
	seen := map[[16]byte]bool{}
	for _, r := range recs {
		assert.False(t, seen[r.ID], "duplicate ID %s", r.ID)
		seen[r.ID] = true
		assert.EqualValues(t, 4, r.ID.Version())
		assert.Equal(t, "RFC4122", r.ID.Variant().String())
	}
}

// plainTx hides the StreamRecorder capability of the Tx it wraps, so that
// RecordIn takes its fallback path.
type plainTx struct{ store.Tx }

// TestRecordIn checks that RecordIn(tx, prefix, id, e) behaves as
// Record(prefix+id, e), with and without the StreamRecorder capability:
// the same versions, the same stream names, the same refusals.
func TestRecordIn(t *testing.T) {
	ctx := context.Background()
	for _, wrap := range []func(store.Tx) store.Tx{
		func(tx store.Tx) store.Tx { return tx },
		func(tx store.Tx) store.Tx { return plainTx{tx} },
	} {
		m := store.NewMemory()
		_, err := m.Update(ctx, func(tx store.Tx) error {
			tx = wrap(tx)
			store.RecordIn(tx, "p/", "1", added{1}) // a new stream
			tx.Record("p/1", added{2})
			store.RecordIn(tx, "p/", "1", added{3})
			v, err := tx.StreamVersion("p/1")
			require.NoError(t, err)
			assert.EqualValues(t, 3, v, "StreamVersion counts RecordIn")
			return nil
		})
		require.NoError(t, err)
		_, err = m.Update(ctx, func(tx store.Tx) error {
			tx = wrap(tx)
			store.RecordIn(tx, "p/", "1", added{4}) // a known stream
			store.RecordIn(tx, "p/", "2", added{5})
			return tx.ExpectVersion("p/1", 4)
		})
		require.NoError(t, err)
		recs, err := m.Read(ctx, 0, nil)
		require.NoError(t, err)
		var got []string
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%s@%d:%d", r.Stream, r.Version, r.Data.(added).N))
		}
		assert.Equal(t, []string{"p/1@1:1", "p/1@2:2", "p/1@3:3", "p/1@4:4", "p/2@1:5"}, got)

		// Refusals leave nothing behind, for a known stream too.
		for name, fn := range map[string]func(tx store.Tx){
			"nil event, known stream": func(tx store.Tx) { store.RecordIn(tx, "p/", "1", nil) },
			"nil event, new stream":   func(tx store.Tx) { store.RecordIn(tx, "p/", "9", nil) },
			"NUL in the id":           func(tx store.Tx) { store.RecordIn(tx, "p/", "1\x00", added{6}) },
			"invalid UTF-8 prefix":    func(tx store.Tx) { store.RecordIn(tx, "p\xff/", "1", added{6}) },
		} {
			head, _ := m.Head(ctx)
			_, err := m.Update(ctx, func(tx store.Tx) error {
				tx = wrap(tx)
				store.RecordIn(tx, "p/", "1", added{7})
				fn(tx)
				return nil
			})
			require.ErrorIs(t, err, store.ErrInvalid, name)
			after, _ := m.Head(ctx)
			assert.Equal(t, head, after, "%s: nothing committed", name)
		}
		m.Close()
	}
}

// TestLogReadAppendsAcrossASegmentEnd: Read appends after what dst holds,
// at most its spare capacity, and a batch that spans the end of the log's
// internal 4096-record segment comes back whole and in order.
func TestLogReadAppendsAcrossASegmentEnd(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	ctx := context.Background()
	for i := 0; i < 4200; i += 100 {
		_, err := st.Update(ctx, func(tx store.Tx) error {
			for j := range 100 {
				tx.Record("s", added{i + j})
			}
			return nil
		})
		require.NoError(t, err)
	}
	held := []event.Record{{Type: "kept.0"}, {Type: "kept.1"}}
	dst := append(make([]event.Record, 0, 2+7), held...)
	recs, err := st.Read(ctx, 4092, dst)
	require.NoError(t, err)
	require.Len(t, recs, 9)
	assert.Equal(t, held, recs[:2], "what dst held stays in front")
	for i, r := range recs[2:] {
		assert.Equal(t, event.Position(4093+i), r.Position)
		assert.Equal(t, added{4092 + i}, r.Data)
		assert.Equal(t, uint64(4093+i), r.Version)
	}
	recs, err = st.Read(ctx, 4198, make([]event.Record, 0, 10))
	require.NoError(t, err)
	require.Len(t, recs, 2, "no record past the head")
	recs, err = st.Read(ctx, 4200, nil)
	require.NoError(t, err)
	assert.Empty(t, recs)
}
