package redisstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cqrskit/cqrs/event"
	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/readmodel/redisstore"
)

// blockOp is one random operation on the query blocks.
type blockOp struct {
	kind  int
	key   string
	group string
	score float64
	val   int64
}

// blocks holds each Redis block and its in-memory counterpart, fed the
// same operations.
type blocks struct {
	rank   *redisstore.Ranking
	mrank  *readmodel.Ranking[string]
	set    *redisstore.SortedSet
	mset   *readmodel.SortedSet[string]
	idx    *redisstore.Index
	midx   *readmodel.Index[string, string]
	recent *redisstore.Recent[int64]
	mrec   map[string]readmodel.Recent[int64]
	avg    *redisstore.Averages
	mavg   map[string]readmodel.RunningAverage
	added  map[string][]int64 // values in each average, for removals
}

func newBlocks(ns *redisstore.Namespace) *blocks {
	return &blocks{
		rank: redisstore.NewRanking(ns, "rank"), mrank: readmodel.NewRanking[string](),
		set: redisstore.NewSortedSet(ns, "set"), mset: readmodel.NewSortedSet[string](),
		idx: redisstore.NewIndex(ns, "idx"), midx: readmodel.NewIndex[string, string](),
		recent: redisstore.NewRecent[int64](ns, "recent", 4), mrec: map[string]readmodel.Recent[int64]{},
		avg: redisstore.NewAverages(ns, "avg"), mavg: map[string]readmodel.RunningAverage{},
		added: map[string][]int64{},
	}
}

func randomOp(rng *rand.Rand) blockOp {
	return blockOp{
		kind:  rng.IntN(9),
		key:   fmt.Sprintf("k%02d", rng.IntN(40)),
		group: fmt.Sprintf("g%d", rng.IntN(4)),
		score: float64(rng.IntN(12)) / 2, // many ties
		val:   int64(1 + rng.IntN(5)),
	}
}

// apply runs op on both sides; with a batch's context the Redis side is
// buffered. It checks, inside a batch, that the index reads its own
// writes.
func (b *blocks) apply(ctx context.Context, op blockOp) error {
	var err error
	switch op.kind {
	case 0, 1:
		b.mrank.Set(op.key, op.score)
		err = b.rank.Set(ctx, op.key, op.score)
	case 2:
		b.mrank.Remove(op.key)
		err = b.rank.Remove(ctx, op.key)
	case 3:
		b.mset.Add(op.key)
		err = b.set.Add(ctx, op.key)
	case 4:
		b.mset.Remove(op.key)
		err = b.set.Remove(ctx, op.key)
	case 5:
		b.midx.Add(op.group, op.key)
		err = b.idx.Add(ctx, op.group, op.key)
	case 6:
		b.midx.Remove(op.group, op.key)
		err = b.idx.Remove(ctx, op.group, op.key)
	case 7:
		r, ok := b.mrec[op.group]
		if !ok {
			r = readmodel.NewRecent[int64](4)
		}
		b.mrec[op.group] = r.Push(op.val)
		err = b.recent.Push(ctx, op.group, op.val)
	case 8:
		if vals := b.added[op.key]; len(vals) > 0 && op.val%2 == 0 {
			x := vals[len(vals)-1]
			b.added[op.key] = vals[:len(vals)-1]
			b.mavg[op.key] = b.mavg[op.key].Remove(float64(x))
			err = b.avg.Remove(ctx, op.key, x)
		} else {
			b.added[op.key] = append(vals, op.val)
			b.mavg[op.key] = b.mavg[op.key].Add(float64(op.val))
			err = b.avg.Add(ctx, op.key, op.val)
		}
	}
	if err != nil {
		return err
	}
	if _, inBatch := redisstore.TxFrom(ctx); inBatch && (op.kind == 5 || op.kind == 6) {
		got, err := b.idx.Keys(ctx, op.group, nil)
		if err != nil {
			return err
		}
		if want := b.midx.Keys(op.group, nil); !slices.Equal(got, want) {
			return fmt.Errorf("inside the batch Keys(%s) = %v, want %v", op.group, got, want)
		}
	}
	return nil
}

// compare fails t where a Redis block differs from its in-memory twin.
func (b *blocks) compare(t *testing.T, step int) {
	t.Helper()
	ctx := context.Background()
	for _, n := range []int{1, 10, 100} {
		got, err := b.rank.Top(ctx, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := b.mrank.Top(n, nil); !slices.Equal(got, want) {
			t.Fatalf("step %d: Top(%d) = %v, want %v", step, n, got, want)
		}
	}
	if n, _ := b.rank.Len(ctx); n != b.mrank.Len() {
		t.Fatalf("step %d: ranking Len %d, want %d", step, n, b.mrank.Len())
	}
	// Page through the set 7 at a time.
	var got, page []string
	var err error
	for page, err = b.set.Page(ctx, 7, nil); err == nil && len(page) > 0; page, err = b.set.PageAfter(ctx, page[len(page)-1], 7, nil) {
		got = append(got, page...)
	}
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.Collect(b.mset.All()); !slices.Equal(got, want) {
		t.Fatalf("step %d: set pages %v, want %v", step, got, want)
	}
	after, _ := b.set.PageAfter(ctx, "k1", 3, nil) // a cursor not in the set
	if want := b.mset.PageAfter("k1", 3, nil); !slices.Equal(after, want) {
		t.Fatalf("step %d: PageAfter(k1) = %v, want %v", step, after, want)
	}
	for g := range 4 {
		group := fmt.Sprintf("g%d", g)
		keys, err := b.idx.Keys(ctx, group, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := b.midx.Keys(group, nil); !slices.Equal(keys, want) {
			t.Fatalf("step %d: index Keys(%s) = %v, want %v", step, group, keys, want)
		}
		items, err := b.recent.Items(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if want := b.mrec[group].Items(); !slices.Equal(items, want) {
			t.Fatalf("step %d: recent %s = %v, want %v", step, group, items, want)
		}
	}
	for k, m := range b.mavg {
		_, n, err := b.avg.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		mean, _ := b.avg.Mean(ctx, k)
		if n != m.Count() || mean != m.Mean() {
			t.Fatalf("step %d: average %s = %v over %d, want %v over %d", step, k, mean, n, m.Mean(), m.Count())
		}
	}
}

// TestBlocksMatchInMemory: the same random operations on each Redis block
// and on its in-memory counterpart give the same answers, with the writes
// applied directly and in projector batches.
func TestBlocksMatchInMemory(t *testing.T) {
	c := client(t)
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			ns := namespace(t, c, "blocks")
			b := newBlocks(ns)
			rng := rand.New(rand.NewPCG(11, 12))
			ctx := context.Background()
			var ops []blockOp
			p := redisstore.NewProjector(ns, func(ctx context.Context, _ *redisstore.Tx, rec event.Record) error {
				return b.apply(ctx, ops[rec.Position-1])
			})
			for step := range 600 {
				op := randomOp(rng)
				ops = append(ops, op)
				if batched {
					if err := p.Handle(ctx, event.Record{Position: event.Position(len(ops))}); err != nil {
						t.Fatal(err)
					}
					if rng.IntN(20) != 0 {
						continue
					}
					if err := p.FlushBatch(ctx, event.Position(len(ops))); err != nil {
						t.Fatal(err)
					}
					b.compare(t, step) // the batch is visible whole
					continue
				}
				if err := b.apply(ctx, op); err != nil {
					t.Fatal(err)
				}
				if step%25 == 0 {
					b.compare(t, step)
				}
			}
			if batched {
				if err := p.FlushBatch(ctx, event.Position(len(ops))); err != nil {
					t.Fatal(err)
				}
			}
			b.compare(t, len(ops))
		})
	}
}

// TestRecentLongBatch: a batch pushing more values to one list than a
// script call takes at once keeps the newest Cap, newest first.
func TestRecentLongBatch(t *testing.T) {
	c := client(t)
	ns := namespace(t, c, "long")
	ctx := context.Background()
	r := redisstore.NewRecent[int](ns, "r", 9000)
	p := redisstore.NewProjector(ns, func(ctx context.Context, _ *redisstore.Tx, rec event.Record) error {
		return r.Push(ctx, "x", int(rec.Position))
	})
	for pos := 1; pos <= 12000; pos++ {
		if err := p.Handle(ctx, event.Record{Position: event.Position(pos)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.FlushBatch(ctx, 12000); err != nil {
		t.Fatal(err)
	}
	want := make([]int, 0, 9000) // the newest 9,000, newest first
	for pos := 12000; pos > 3000; pos-- {
		want = append(want, pos)
	}
	got, err := r.Items(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %d items starting %v, want %d starting %v", len(got), got[:min(3, len(got))], len(want), want[:3])
	}
}
