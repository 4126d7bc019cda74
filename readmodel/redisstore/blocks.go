package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/cqrskit/cqrs/readmodel"
	"github.com/cqrskit/cqrs/store"
)

// The query building blocks below are the Redis counterparts of
// readmodel's Ranking, SortedSet, Index, Recent and RunningAverage. Each
// read is one round trip (one script that also resolves the generation),
// and costs what the Redis command costs: O(log n + k) for a top-k or a
// page. Writes take a context: inside a Projector's apply function they
// join the batch, elsewhere they are applied at once. Every type is safe
// for concurrent use.

// Ranking is a top-K index from string keys to scores, highest score
// first and ties by ascending key, like readmodel.Ranking: a sorted set
// holding the negated scores, so Redis's own tie order (ascending member)
// is the one wanted. Key: "<generation prefix>r:<name>".
type Ranking struct {
	ns  *Namespace
	rel string
}

// NewRanking returns the ranking named name in ns.
func NewRanking(ns *Namespace, name string) *Ranking { return &Ranking{ns: ns, rel: "r:" + name} }

// Set ranks key with score. A NaN score gives a *store.InvalidError:
// Redis cannot order it.
func (r *Ranking) Set(ctx context.Context, key string, score float64) error {
	if math.IsNaN(score) {
		return &store.InvalidError{What: "ranking score", Reason: "NaN cannot be ranked"}
	}
	return r.ns.writeOps(ctx, "zadd", r.rel, strconv.FormatFloat(-score, 'g', -1, 64), key)
}

// Remove takes key out of the ranking.
func (r *Ranking) Remove(ctx context.Context, key string) error {
	return r.ns.writeOps(ctx, "zrem", r.rel, key)
}

// Top appends the best n entries to dst, best first.
func (r *Ranking) Top(ctx context.Context, n int, dst []readmodel.Ranked[string]) ([]readmodel.Ranked[string], error) {
	if n <= 0 {
		return dst, nil
	}
	res, err := r.ns.read(ctx, readOp{op: "zrange", rel: r.rel, a: "0", b: strconv.Itoa(n - 1)})
	if err != nil {
		return dst, err
	}
	flat, _ := res[0].([]any)
	for i := 0; i+1 < len(flat); i += 2 {
		s, err := parseScore(flat[i+1])
		if err != nil {
			return dst, err
		}
		m, _ := flat[i].(string)
		dst = append(dst, readmodel.Ranked[string]{Key: m, Score: -s})
	}
	return dst, nil
}

// Score returns key's score, and false when it is not ranked.
func (r *Ranking) Score(ctx context.Context, key string) (float64, bool, error) {
	res, err := r.ns.read(ctx, readOp{op: "zscore", rel: r.rel, a: key})
	if err != nil || res[0] == nil {
		return 0, false, err
	}
	s, err := parseScore(res[0])
	return -s, err == nil, err
}

// Len returns the number of ranked keys.
func (r *Ranking) Len(ctx context.Context) (int, error) { return count(ctx, r.ns, "zcard", r.rel) }

func parseScore(v any) (float64, error) {
	s, _ := v.(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("redisstore: score %q: %w", s, err)
	}
	return f, nil
}

func count(ctx context.Context, ns *Namespace, op, rel string) (int, error) {
	res, err := ns.read(ctx, readOp{op: op, rel: rel})
	if err != nil {
		return 0, err
	}
	n, _ := res[0].(int64)
	return int(n), nil
}

// SortedSet is an ordered set of strings with cursor paging, like
// readmodel.SortedSet (for example the IDs of in-stock products): a sorted
// set whose members all score 0, so Redis orders them bytewise, as Go
// compares strings. Key: "<generation prefix>z:<name>".
type SortedSet struct {
	ns  *Namespace
	rel string
}

// NewSortedSet returns the sorted set named name in ns.
func NewSortedSet(ns *Namespace, name string) *SortedSet {
	return &SortedSet{ns: ns, rel: "z:" + name}
}

// Add adds key.
func (s *SortedSet) Add(ctx context.Context, key string) error {
	return s.ns.writeOps(ctx, "zadd", s.rel, "0", key)
}

// Remove removes key.
func (s *SortedSet) Remove(ctx context.Context, key string) error {
	return s.ns.writeOps(ctx, "zrem", s.rel, key)
}

// Page appends up to limit of the smallest keys to dst.
func (s *SortedSet) Page(ctx context.Context, limit int, dst []string) ([]string, error) {
	return page(ctx, s.ns, s.rel, "-", limit, dst)
}

// PageAfter appends to dst up to limit keys strictly greater than after,
// in ascending order: pass the last key of a page to get the next one.
func (s *SortedSet) PageAfter(ctx context.Context, after string, limit int, dst []string) ([]string, error) {
	return page(ctx, s.ns, s.rel, "("+after, limit, dst)
}

// Len returns the number of keys.
func (s *SortedSet) Len(ctx context.Context) (int, error) { return count(ctx, s.ns, "zcard", s.rel) }

func page(ctx context.Context, ns *Namespace, rel, from string, limit int, dst []string) ([]string, error) {
	if limit <= 0 {
		return dst, nil
	}
	res, err := ns.read(ctx, readOp{op: "zlex", rel: rel, a: from, b: strconv.Itoa(limit)})
	if err != nil {
		return dst, err
	}
	for _, m := range res[0].([]any) {
		dst = append(dst, m.(string))
	}
	return dst, nil
}

// Index maps a group to an ordered set of keys, like readmodel.Index (for
// example a seller's products): one SortedSet per group, key
// "<generation prefix>i:<name>:<group>".
type Index struct {
	ns  *Namespace
	rel string
}

// NewIndex returns the index named name in ns.
func NewIndex(ns *Namespace, name string) *Index { return &Index{ns: ns, rel: "i:" + name + ":"} }

// Add adds key to group.
func (x *Index) Add(ctx context.Context, group, key string) error {
	return x.ns.writeOps(ctx, "zadd", x.rel+group, "0", key)
}

// Remove removes key from group.
func (x *Index) Remove(ctx context.Context, group, key string) error {
	return x.ns.writeOps(ctx, "zrem", x.rel+group, key)
}

// Keys appends every key of group to dst in ascending order. Inside a
// Projector's apply function it sees the batch's own Adds and Removes.
func (x *Index) Keys(ctx context.Context, group string, dst []string) ([]string, error) {
	if tx, ok := TxFrom(ctx); ok && tx.ns.base == x.ns.base {
		keys, err := tx.zmembers(ctx, x.rel+group)
		return append(dst, keys...), err
	}
	return page(ctx, x.ns, x.rel+group, "-", math.MaxInt32, dst)
}

// Page appends up to limit of group's smallest keys to dst.
func (x *Index) Page(ctx context.Context, group string, limit int, dst []string) ([]string, error) {
	return page(ctx, x.ns, x.rel+group, "-", limit, dst)
}

// PageAfter appends up to limit keys of group strictly greater than after.
func (x *Index) PageAfter(ctx context.Context, group, after string, limit int, dst []string) ([]string, error) {
	return page(ctx, x.ns, x.rel+group, "("+after, limit, dst)
}

// Len returns the number of keys in group.
func (x *Index) Len(ctx context.Context, group string) (int, error) {
	return count(ctx, x.ns, "zcard", x.rel+group)
}

// Recent keeps, per item, the newest Cap values pushed, newest first, like
// readmodel.Recent: a list trimmed on every push (LPUSH+LTRIM), key
// "<generation prefix>l:<name>:<item>", values JSON-encoded.
type Recent[T any] struct {
	ns       *Namespace
	rel      string
	capacity int
}

// NewRecent returns the lists named name in ns, keeping capacity values
// each. It panics if capacity < 1, as readmodel.NewRecent does.
func NewRecent[T any](ns *Namespace, name string, capacity int) *Recent[T] {
	if capacity < 1 {
		panic(fmt.Sprintf("redisstore: NewRecent capacity %d < 1", capacity))
	}
	return &Recent[T]{ns: ns, rel: "l:" + name + ":", capacity: capacity}
}

// Cap returns how many values an item keeps.
func (r *Recent[T]) Cap() int { return r.capacity }

// Push makes x the newest value of item, dropping the oldest beyond Cap.
// A value that does not encode gives a *store.InvalidError.
func (r *Recent[T]) Push(ctx context.Context, item string, x T) error {
	b, err := json.Marshal(x)
	if err != nil {
		return &store.InvalidError{What: "recent value", Reason: "does not encode", Err: err}
	}
	return r.ns.writeOps(ctx, "lpush", r.rel+item, string(b), strconv.Itoa(r.capacity))
}

// Items returns item's values, newest first.
func (r *Recent[T]) Items(ctx context.Context, item string) ([]T, error) {
	res, err := r.ns.read(ctx, readOp{op: "lrange", rel: r.rel + item, a: "0", b: strconv.Itoa(r.capacity - 1)})
	if err != nil {
		return nil, err
	}
	raw := res[0].([]any)
	out := make([]T, len(raw))
	for i, v := range raw {
		if err := json.Unmarshal([]byte(v.(string)), &out[i]); err != nil {
			return nil, &store.InvalidError{What: "recent value", Reason: "stored value does not decode", Err: err}
		}
	}
	return out, nil
}

// Averages keeps running averages of integer values (ratings, counts) by
// member: two hash fields per member, the exact integer sum and the count,
// key "<generation prefix>a:<name>". Remove of the last value empties the
// member, and Remove of an empty one does nothing, as with
// readmodel.RunningAverage.
type Averages struct {
	ns  *Namespace
	rel string
}

// NewAverages returns the averages named name in ns.
func NewAverages(ns *Namespace, name string) *Averages { return &Averages{ns: ns, rel: "a:" + name} }

// Add adds x to member's average.
func (a *Averages) Add(ctx context.Context, member string, x int64) error {
	return a.ns.writeOps(ctx, "avgadd", a.rel, member, strconv.FormatInt(x, 10))
}

// Remove takes one x out of member's average.
func (a *Averages) Remove(ctx context.Context, member string, x int64) error {
	return a.ns.writeOps(ctx, "avgrem", a.rel, member, strconv.FormatInt(x, 10))
}

// Get returns member's sum and count (0, 0 when empty).
func (a *Averages) Get(ctx context.Context, member string) (sum, n int64, err error) {
	res, err := a.ns.read(ctx, readOp{op: "hmget", rel: a.rel, a: member + "\x00s", b: member + "\x00n"})
	if err != nil {
		return 0, 0, err
	}
	pair := res[0].([]any)
	if s, ok := pair[0].(string); ok {
		sum, _ = strconv.ParseInt(s, 10, 64)
	}
	if s, ok := pair[1].(string); ok {
		n, _ = strconv.ParseInt(s, 10, 64)
	}
	return sum, n, nil
}

// Mean returns member's mean, 0 when empty.
func (a *Averages) Mean(ctx context.Context, member string) (float64, error) {
	sum, n, err := a.Get(ctx, member)
	if err != nil || n == 0 {
		return 0, err
	}
	return float64(sum) / float64(n), nil
}
