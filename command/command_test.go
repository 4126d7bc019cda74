package command_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cqrskit/cqrs/command"
	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/store"
)

type incremented struct{ By int }

func (incremented) EventType() string { return "test.Incremented" }

type increment struct {
	Key string
	By  int
}

func (c increment) Validate() error {
	v := &command.ValidationError{}
	if c.Key == "" {
		v.Add("Key", "is required")
	}
	if c.By <= 0 {
		v.Add("By", "must be positive")
	}
	return v.Err()
}

type plainInvalid struct{}

func (plainInvalid) Validate() error { return errors.New("nope") }

func newCounter(t *testing.T, opts ...command.Option) (*store.Memory, *command.Bus, *store.Table[string, int]) {
	st := store.NewMemory()
	t.Cleanup(func() { st.Close() })
	counters := store.NewTable[string, int](st, "counters")
	b := command.New(st, opts...)
	command.Register(b, func(ctx context.Context, tx store.Tx, c increment) error {
		n, ver, err := counters.Get(tx, c.Key)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if _, err := counters.PutIf(tx, c.Key, n+c.By, ver); err != nil {
			return err
		}
		tx.Record("counter/"+c.Key, incremented{c.By})
		return nil
	})
	command.Register(b, func(context.Context, store.Tx, plainInvalid) error { return nil })
	return st, b, counters
}

func value(t *testing.T, st *store.Memory, tbl *store.Table[string, int], key string) int {
	var n int
	_, err := st.Update(context.Background(), func(tx store.Tx) error {
		var err error
		n, _, err = tbl.Get(tx, key)
		return err
	})
	require.NoError(t, err)
	return n
}

func TestDispatchTypedAndResultToken(t *testing.T) {
	st, b, tbl := newCounter(t)
	ctx := context.Background()
	res, err := command.Dispatch(ctx, b, increment{"a", 2})
	require.NoError(t, err)
	assert.EqualValues(t, 1, res.Position)
	res, err = b.Dispatch(ctx, increment{"a", 3})
	require.NoError(t, err)
	assert.EqualValues(t, 2, res.Position)
	assert.Equal(t, 5, value(t, st, tbl, "a"))
}

func TestRejectionsAreTypedAndWriteNothing(t *testing.T) {
	st, b, _ := newCounter(t)
	ctx := context.Background()
	_, err := b.Dispatch(ctx, struct{}{})
	var nh *command.NoHandlerError
	require.ErrorAs(t, err, &nh)
	assert.Equal(t, "struct {}", nh.Type)

	_, err = b.Dispatch(ctx, increment{"", -1})
	var ve *command.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.ErrorIs(t, err, command.ErrValidation)
	assert.Len(t, ve.Fields, 2)
	assert.Equal(t, "command: invalid Key: is required; By: must be positive", ve.Error())

	_, err = b.Dispatch(ctx, plainInvalid{})
	assert.ErrorIs(t, err, command.ErrValidation, "plain errors from Validate are wrapped")

	head, _ := st.Head(ctx)
	assert.Zero(t, head)
}

func TestErrorTypesMatchTheirSentinels(t *testing.T) {
	assert.ErrorIs(t, store.NotFound("product", "p1"), store.ErrNotFound)
	assert.ErrorIs(t, &command.StaleError{Stream: "s"}, store.ErrConflict)
	assert.ErrorIs(t, command.Forbidden("no"), command.ErrForbidden)
	assert.ErrorIs(t, command.Invalid("f", "bad"), command.ErrValidation)
	ac := &command.AfterCommitError{Position: 3, Err: store.ErrConflict}
	assert.ErrorIs(t, ac, command.ErrAfterCommit)
	assert.ErrorIs(t, ac, store.ErrConflict)
	assert.NoError(t, (&command.ValidationError{}).Err())
	var nilV *command.ValidationError
	assert.NoError(t, nilV.Err())
}

// Concurrent read-modify-write through PutIf: Memory serialises units of
// work, so every increment lands; the final value is exact.
func TestConcurrentDispatchIsExact(t *testing.T) {
	st, b, tbl := newCounter(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, err := b.Dispatch(context.Background(), increment{"k", 1})
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 800, value(t, st, tbl, "k"))
	_, err := st.Update(context.Background(), func(tx store.Tx) error {
		v, err := tx.StreamVersion("counter/k")
		assert.EqualValues(t, 800, v)
		return err
	})
	require.NoError(t, err)
}

// A client that read version v and writes back later loses to a newer write;
// Retry re-runs the handler, which re-reads.
type setIfVersion struct {
	Key     string
	Val     int
	Version *uint64 // nil: read it inside the handler
}

func TestRetryOnConflict(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	tbl := store.NewTable[string, int](st, "t")
	var runs atomic.Int32
	b := command.New(st, command.WithMiddleware(command.Retry(3, nil)))
	command.Register(b, func(ctx context.Context, tx store.Tx, c setIfVersion) error {
		n := runs.Add(1)
		ver := uint64(0)
		if n == 1 {
			ver = 99 // stale on the first run
		} else {
			_, v, err := tbl.Get(tx, c.Key)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			ver = v
		}
		_, err := tbl.PutIf(tx, c.Key, c.Val, ver)
		return err
	})
	_, err := b.Dispatch(context.Background(), setIfVersion{Key: "k", Val: 1})
	require.NoError(t, err)
	assert.EqualValues(t, 2, runs.Load())

	// Exhausted retries surface the conflict.
	always := command.New(st, command.WithMiddleware(command.Retry(4, func(int) time.Duration { return time.Microsecond })))
	var n atomic.Int32
	command.Register(always, func(ctx context.Context, tx store.Tx, c setIfVersion) error {
		n.Add(1)
		_, err := tbl.PutIf(tx, c.Key, c.Val, 1234)
		return err
	})
	_, err = always.Dispatch(context.Background(), setIfVersion{Key: "k"})
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.EqualValues(t, 4, n.Load())
}

type failingSync struct{ err error }

func (f failingSync) Sync(context.Context, event.Position) error { return f.err }

func TestAfterCommitErrorIsNotRetried(t *testing.T) {
	var runs atomic.Int32
	st, b, tbl := newCounter(t, command.WithMiddleware(command.Retry(5, nil), command.Observe(func(any, time.Duration, error) { runs.Add(1) })),
		command.WithSyncer(failingSync{store.ErrConflict}))
	res, err := b.Dispatch(context.Background(), increment{"a", 1})
	var ac *command.AfterCommitError
	require.ErrorAs(t, err, &ac)
	assert.EqualValues(t, 1, ac.Position)
	assert.EqualValues(t, 1, res.Position, "the result is valid: the command committed")
	assert.EqualValues(t, 1, runs.Load(), "never re-run a committed command")
	assert.Equal(t, 1, value(t, st, tbl, "a"))
}

func TestAuthorizeLoggingRecover(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, b, _ := newCounter(t, command.WithMiddleware(
		command.Recover(),
		command.Logging(logger),
		command.Authorize(func(ctx context.Context, cmd any) error {
			if event.MetadataFrom(ctx).UserID != "admin" {
				return errors.New("admins only")
			}
			return nil
		}),
	))
	_, err := b.Dispatch(context.Background(), increment{"a", 1})
	var fe *command.ForbiddenError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "admins only", fe.Reason)
	assert.Contains(t, buf.String(), "command failed")

	ctx := event.WithMetadata(context.Background(), event.Metadata{UserID: "admin"})
	_, err = b.Dispatch(ctx, increment{"a", 1})
	require.NoError(t, err)
	assert.Contains(t, buf.String(), "command committed")

	type boom struct{}
	command.Register(b, func(context.Context, store.Tx, boom) error { panic("kaput") })
	_, err = b.Dispatch(ctx, boom{})
	var pe *event.PanicError
	require.ErrorAs(t, err, &pe)
	assert.ErrorIs(t, err, event.ErrPanic)
	assert.Equal(t, "kaput", pe.Value)
	assert.NotEmpty(t, pe.Stack)

	cause := errors.New("disk on fire")
	type boomErr struct{}
	command.Register(b, func(context.Context, store.Tx, boomErr) error { panic(cause) })
	_, err = b.Dispatch(ctx, boomErr{})
	assert.ErrorIs(t, err, event.ErrPanic)
	assert.ErrorIs(t, err, cause, "a panic with an error value unwraps to it")
	head, _ := st.Head(ctx)
	assert.EqualValues(t, 1, head)
}

func TestRegisterTwicePanics(t *testing.T) {
	_, b, _ := newCounter(t)
	assert.Panics(t, func() {
		command.Register(b, func(context.Context, store.Tx, increment) error { return nil })
	})
}

// The tests below run in a synctest bubble: timers and context deadlines
// use its fake clock, so an hour-long backoff takes no wall time and the
// time a dispatch took is exact.

func TestRetryStopsWaitingWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		defer st.Close()
		tbl := store.NewTable[string, int](st, "t")
		b := command.New(st, command.WithMiddleware(command.Retry(100, func(int) time.Duration { return time.Hour })))
		command.Register(b, func(ctx context.Context, tx store.Tx, c setIfVersion) error {
			_, err := tbl.PutIf(tx, c.Key, 1, 77)
			return err
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := b.Dispatch(ctx, setIfVersion{Key: "k"})
		assert.ErrorIs(t, err, store.ErrConflict)
		assert.Equal(t, 20*time.Millisecond, time.Since(start), "Retry returns when ctx ends, not after the backoff")
	})
}

// Retry sleeps backoff(n) before run n+1, and only that long.
func TestRetryWaitsTheBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		defer st.Close()
		tbl := store.NewTable[string, int](st, "t")
		var ns []int
		b := command.New(st, command.WithMiddleware(command.Retry(4, func(n int) time.Duration {
			ns = append(ns, n)
			return time.Duration(n) * 10 * time.Millisecond
		})))
		var runs atomic.Int32
		command.Register(b, func(ctx context.Context, tx store.Tx, c setIfVersion) error {
			runs.Add(1)
			_, err := tbl.PutIf(tx, c.Key, 1, 77)
			return err
		})
		start := time.Now()
		_, err := b.Dispatch(context.Background(), setIfVersion{Key: "k"})
		var ce *store.ConflictError
		require.ErrorAs(t, err, &ce, "the attempts are used up")
		assert.EqualValues(t, 4, runs.Load())
		assert.Equal(t, []int{1, 2, 3}, ns)
		assert.Equal(t, (10+20+30)*time.Millisecond, time.Since(start))
	})
}

// When ctx ends while Retry waits between attempts, the error says so
// (ctx.Err()) and still carries the last conflict.
func TestRetryReturnsContextErrorWithLastConflict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		defer st.Close()
		tbl := store.NewTable[string, int](st, "t")
		var runs atomic.Int32
		b := command.New(st, command.WithMiddleware(command.Retry(100, func(int) time.Duration { return time.Hour })))
		command.Register(b, func(ctx context.Context, tx store.Tx, c setIfVersion) error {
			runs.Add(1)
			_, err := tbl.PutIf(tx, c.Key, 1, 77)
			return err
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := b.Dispatch(ctx, setIfVersion{Key: "k"})
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		var ce *store.ConflictError
		assert.ErrorAs(t, err, &ce, "the last conflict stays reachable")
		assert.EqualValues(t, 1, runs.Load())

		// A context that is already done when a conflict comes back (no
		// backoff to wait in) ends the loop too, instead of running again.
		runs.Store(0)
		nb := command.New(st, command.WithMiddleware(command.Retry(5, nil)))
		done, cancelDone := context.WithCancel(context.Background())
		command.Register(nb, func(ctx context.Context, tx store.Tx, c setIfVersion) error {
			runs.Add(1)
			cancelDone()
			_, err := tbl.PutIf(tx, c.Key, 1, 77)
			return err
		})
		_, err = nb.Dispatch(done, setIfVersion{Key: "k"})
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, err, store.ErrConflict)
		assert.EqualValues(t, 1, runs.Load())
	})
}

// Permanent failures are never retried: a duplicate, a business-rule
// rejection.
func TestRetryDoesNotRetryPermanentErrors(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	b := command.New(st, command.WithMiddleware(command.Retry(5, nil)))
	var runs atomic.Int32
	type create struct{ Err error }
	command.Register(b, func(ctx context.Context, tx store.Tx, c create) error {
		runs.Add(1)
		return c.Err
	})
	for _, err := range []error{
		&store.AlreadyExistsError{Table: "t", Key: "k"},
		command.Reject("sold_out", "no seats left"),
	} {
		runs.Store(0)
		_, got := b.Dispatch(context.Background(), create{err})
		assert.ErrorIs(t, got, err)
		assert.EqualValues(t, 1, runs.Load(), "%v", err)
	}
}

type priced struct {
	ID    string
	Cents int
}

func (c *priced) Validate() error {
	if c.Cents < 0 {
		return command.Invalid("Cents", "must not be negative")
	}
	return nil
}

// A pointer to a command reaches the handler registered on the value type,
// through the untyped and the typed Dispatch alike, and middleware sees the
// value type.
func TestDispatchPointerToValueCommand(t *testing.T) {
	var seen []string
	st, b, tbl := newCounter(t, command.WithMiddleware(func(next command.DispatchFunc) command.DispatchFunc {
		return func(ctx context.Context, cmd any) (command.Result, error) {
			seen = append(seen, fmt.Sprintf("%T", cmd))
			return next(ctx, cmd)
		}
	}))
	ctx := context.Background()
	_, err := b.Dispatch(ctx, &increment{"a", 2})
	require.NoError(t, err)
	_, err = command.Dispatch(ctx, b, &increment{"a", 3})
	require.NoError(t, err)
	assert.Equal(t, 5, value(t, st, tbl, "a"))
	assert.Equal(t, []string{"command_test.increment", "command_test.increment"}, seen)

	_, err = b.Dispatch(ctx, &increment{"", 1})
	assert.ErrorIs(t, err, command.ErrValidation, "validation runs on the dereferenced command")

	var nilCmd *increment
	_, err = b.Dispatch(ctx, nilCmd)
	assert.ErrorIs(t, err, command.ErrValidation, "a nil pointer is an invalid command")
	_, err = b.Dispatch(ctx, nil)
	var nh *command.NoHandlerError
	require.ErrorAs(t, err, &nh)
	assert.Equal(t, "<nil>", nh.Type)
	_, err = b.Dispatch(ctx, &struct{}{})
	require.ErrorAs(t, err, &nh)
	assert.Equal(t, "*struct {}", nh.Type)
}

// Validate with a pointer receiver runs for a command registered (and
// dispatched) as a value.
func TestValidateWithPointerReceiverRuns(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	b := command.New(st)
	var runs int
	command.Register(b, func(context.Context, store.Tx, priced) error { runs++; return nil })
	_, err := b.Dispatch(context.Background(), priced{ID: "x", Cents: -1})
	assert.ErrorIs(t, err, command.ErrValidation)
	_, err = b.Dispatch(context.Background(), &priced{ID: "x", Cents: -1})
	assert.ErrorIs(t, err, command.ErrValidation)
	assert.Zero(t, runs)
}

// A handler on the pointer type gets the pointer; the value does not reach it.
func TestHandlerOnPointerType(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	b := command.New(st)
	var got *increment
	command.Register(b, func(_ context.Context, _ store.Tx, c *increment) error { got = c; return nil })
	c := &increment{"k", 1}
	_, err := b.Dispatch(context.Background(), c)
	require.NoError(t, err)
	assert.Same(t, c, got)
	_, err = b.Dispatch(context.Background(), increment{"k", 1})
	var nh *command.NoHandlerError
	assert.ErrorAs(t, err, &nh)
}

// ExpectVersion turns a mismatch into a *StaleError: it matches ErrConflict,
// and Retry does not re-run it.
func TestExpectVersionIsStaleAndNotRetried(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	b := command.New(st, command.WithMiddleware(command.Retry(5, nil)))
	var runs atomic.Int32
	type note struct{ Expected uint64 }
	command.Register(b, func(ctx context.Context, tx store.Tx, c note) error {
		runs.Add(1)
		if err := command.ExpectVersion(tx, "notes/1", c.Expected); err != nil {
			return err
		}
		tx.Record("notes/1", incremented{1})
		return nil
	})
	ctx := context.Background()
	_, err := b.Dispatch(ctx, note{Expected: 0})
	require.NoError(t, err)
	runs.Store(0)
	_, err = b.Dispatch(ctx, note{Expected: 0})
	var se *command.StaleError
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, store.ErrConflict)
	assert.Equal(t, command.StaleError{Stream: "notes/1", Expected: 0, Actual: 1}, *se)
	assert.EqualValues(t, 1, runs.Load(), "a stale version is not retried")
	_, err = b.Dispatch(ctx, note{Expected: 1})
	require.NoError(t, err)
}

func TestNoHandlerHintsAtPointerRegistration(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	b := command.New(st)
	command.Register(b, func(context.Context, store.Tx, *priced) error { return nil })
	_, err := b.Dispatch(context.Background(), priced{})
	var nh *command.NoHandlerError
	require.ErrorAs(t, err, &nh)
	assert.Contains(t, nh.Error(), "dispatch a pointer")
	assert.Panics(t, func() {
		command.Register(b, func(context.Context, store.Tx, command.Validator) error { return nil })
	}, "an interface type can never be dispatched")
}

// A handler that panics with a conflict error is a bug, not a lost race:
// Retry outside Recover must not re-run it.
func TestRetryDoesNotRetryAPanicWithAConflictValue(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	b := command.New(st, command.WithMiddleware(command.Retry(5, nil), command.Recover()))
	var runs atomic.Int32
	type boom struct{}
	command.Register(b, func(ctx context.Context, tx store.Tx, _ boom) error {
		runs.Add(1)
		panic(&store.ConflictError{Table: "t", Key: "k", Expected: 1, Actual: 2})
	})
	_, err := b.Dispatch(context.Background(), boom{})
	require.ErrorIs(t, err, event.ErrPanic)
	assert.ErrorIs(t, err, store.ErrConflict, "the panic value stays reachable")
	assert.EqualValues(t, 1, runs.Load())
}
