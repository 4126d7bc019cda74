package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/cqrskit/cqrs/event"
	"github.com/redis/go-redis/v9"
)

// Tx is the batch of writes a Projector is applying: what the apply
// function writes through read models (with the context it was given) is
// buffered here and committed with the batch's checkpoint in one script.
//
// Reads inside the apply function see the generation being written. Store
// and SortedSet reads also see the batch's own earlier writes; Ranking,
// Recent and Averages reads see the state before the batch. A Tx is used
// by one goroutine at a time: the runner's.
type Tx struct {
	ns   *Namespace
	gen  uint64
	pre  string // key prefix of gen
	ops  []any  // flat operation list, as luaApplyOps reads it
	last event.Position

	// overlay holds the batch's writes to hash fields and sorted-set
	// members, so the batch reads its own writes; undo lets a failed
	// record's writes be taken back.
	hash map[string]map[string]*string // rel -> field -> value (nil: deleted)
	zset map[string]map[string]*string // rel -> member -> score (nil: removed)
	undo []func()
}

// Generation returns the generation the batch writes.
func (tx *Tx) Generation() uint64 { return tx.gen }

// Len returns the number of buffered operations.
func (tx *Tx) Len() int { return len(tx.ops) }

// add buffers operations (already in luaApplyOps form) and maintains the
// overlay.
func (tx *Tx) add(ops ...any) {
	for i := 0; i < len(ops); {
		op, rel := ops[i].(string), ops[i+1].(string)
		switch op {
		case "hset":
			v := ops[i+3].(string)
			tx.setHash(rel, ops[i+2].(string), &v)
			i += 4
		case "hdel":
			tx.setHash(rel, ops[i+2].(string), nil)
			i += 3
		case "zadd":
			score := ops[i+2].(string)
			tx.setZ(rel, ops[i+3].(string), &score)
			i += 4
		case "zrem":
			tx.setZ(rel, ops[i+2].(string), nil)
			i += 3
		case "lpush", "avgadd", "avgrem":
			i += 4
		default:
			panic("redisstore: Tx.add: operation " + op)
		}
	}
	tx.ops = append(tx.ops, ops...)
}

func (tx *Tx) setHash(rel, field string, v *string) {
	m := tx.hash[rel]
	if m == nil {
		if tx.hash == nil {
			tx.hash = make(map[string]map[string]*string)
		}
		m = make(map[string]*string)
		tx.hash[rel] = m
	}
	prev, had := m[field]
	tx.undo = append(tx.undo, func() {
		if had {
			m[field] = prev
		} else {
			delete(m, field)
		}
	})
	m[field] = v
}

func (tx *Tx) setZ(rel, member string, score *string) {
	m := tx.zset[rel]
	if m == nil {
		if tx.zset == nil {
			tx.zset = make(map[string]map[string]*string)
		}
		m = make(map[string]*string)
		tx.zset[rel] = m
	}
	prev, had := m[member]
	tx.undo = append(tx.undo, func() {
		if had {
			m[member] = prev
		} else {
			delete(m, member)
		}
	})
	m[member] = score
}

// savepoint and rollback take back the writes of a record whose apply
// failed, keeping the rest of the batch.
type savepoint struct{ ops, undo int }

func (tx *Tx) savepoint() savepoint { return savepoint{len(tx.ops), len(tx.undo)} }

func (tx *Tx) rollback(sp savepoint) {
	for i := len(tx.undo) - 1; i >= sp.undo; i-- {
		tx.undo[i]()
	}
	clear(tx.ops[sp.ops:])
	tx.ops, tx.undo = tx.ops[:sp.ops], tx.undo[:sp.undo]
}

// hget reads a hash field as the batch sees it.
func (tx *Tx) hget(ctx context.Context, rel, field string) (string, bool, error) {
	if v, ok := tx.hash[rel][field]; ok {
		if v == nil {
			return "", false, nil
		}
		return *v, true, nil
	}
	s, err := tx.ns.rdb.HGet(ctx, tx.pre+rel, field).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, wrap("read in batch", err)
	}
	return s, true, nil
}

// zmembers returns the members of a lexicographic sorted set as the batch
// sees it, in order.
func (tx *Tx) zmembers(ctx context.Context, rel string) ([]string, error) {
	got, err := tx.ns.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: tx.pre + rel, Start: "-", Stop: "+", ByLex: true}).Result()
	if err != nil {
		return nil, wrap("read in batch", err)
	}
	over := tx.zset[rel]
	if len(over) == 0 {
		return got, nil
	}
	set := make(map[string]bool, len(got)+len(over))
	for _, m := range got {
		set[m] = true
	}
	for m, score := range over {
		set[m] = score != nil
	}
	out := got[:0]
	for m, in := range set {
		if in {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out, nil
}

// commitResult is what the commit script reports.
type commitResult struct {
	status, detail string
}

// commit runs the commit script for the buffered operations.
func (tx *Tx) commit(ctx context.Context, field string, from, to string, check bool, fenceKey string, token uint64, advance bool) (commitResult, error) {
	args := make([]any, 0, 11+len(tx.ops))
	adv := "0"
	if advance {
		adv = "1"
	}
	chk := "0"
	if check {
		chk = "1"
	}
	fk, tok := "", ""
	if fenceKey != "" {
		fk, tok = fenceKey, fmt.Sprint(token)
	}
	args = append(args, tx.ns.genKey(), fmt.Sprint(tx.gen), tx.pre, tx.pre+"cp", field, from, to, chk, fk, tok, adv)
	args = tx.compact(args)
	res, err := commitScript.Run(ctx, tx.ns.rdb, nil, args...).StringSlice()
	if err != nil {
		return commitResult{}, wrap("commit", err)
	}
	if len(res) != 2 {
		return commitResult{}, fmt.Errorf("redisstore: commit returned %q", res)
	}
	return commitResult{res[0], res[1]}, nil
}

// chunk bounds the arguments of one Redis call the commit script makes
// (Lua's unpack has a stack limit of about 8,000 values).
const chunk = 500

// compact appends the batch's operations to args in the form the commit
// script applies fastest, with the same effect as applying them one by
// one: one value per hash field and sorted-set member (the last one
// written, which the overlay holds), grouped into one HSET, HDEL, ZADD or
// ZREM per key; the pushes to a list as one LPUSH of at most its capacity
// (the older ones would be trimmed anyway) and one LTRIM; consecutive
// additions to an average as one pair of HINCRBYs. The script's cost is
// dominated by the number of Redis calls it makes, so this is what makes a
// batch of a thousand events cheap.
func (tx *Tx) compact(args []any) []any {
	for rel, fields := range tx.hash {
		var set, del []any
		for f, v := range fields {
			if v == nil {
				del = append(del, f)
			} else {
				set = append(set, f, *v)
			}
		}
		args = grouped(args, "hsetn", rel, set, 2)
		args = grouped(args, "hdeln", rel, del, 1)
	}
	for rel, members := range tx.zset {
		var add, rem []any
		for m, score := range members {
			if score == nil {
				rem = append(rem, m)
			} else {
				add = append(add, *score, m)
			}
		}
		args = grouped(args, "zaddn", rel, add, 2)
		args = grouped(args, "zremn", rel, rem, 1)
	}
	type list struct {
		capacity string
		vals     []any
	}
	type avg struct {
		sum, n int64
		seq    []any // the operations, when one is a removal
	}
	var lists map[string]*list
	var lorder []string
	var avgs map[[2]string]*avg
	var aorder [][2]string
	for i := 0; i < len(tx.ops); {
		op, rel := tx.ops[i].(string), tx.ops[i+1].(string)
		switch op {
		case "hset", "zadd":
			i += 4
		case "hdel", "zrem":
			i += 3
		case "lpush":
			if lists == nil {
				lists = make(map[string]*list)
			}
			l := lists[rel]
			if l == nil {
				l = &list{capacity: tx.ops[i+3].(string)}
				lists[rel] = l
				lorder = append(lorder, rel)
			}
			l.vals = append(l.vals, tx.ops[i+2])
			i += 4
		case "avgadd", "avgrem":
			if avgs == nil {
				avgs = make(map[[2]string]*avg)
			}
			k := [2]string{rel, tx.ops[i+2].(string)}
			a := avgs[k]
			if a == nil {
				a = &avg{}
				avgs[k] = a
				aorder = append(aorder, k)
			}
			x, _ := strconv.ParseInt(tx.ops[i+3].(string), 10, 64)
			a.sum += x
			a.n++
			if op == "avgrem" && a.seq == nil {
				a.seq = []any{}
			}
			a.seq = append(a.seq, op, rel, k[1], tx.ops[i+3])
			i += 4
		default:
			panic("redisstore: compact: operation " + op)
		}
	}
	for _, rel := range lorder {
		l := lists[rel]
		c, _ := strconv.Atoi(l.capacity)
		vals := l.vals[max(len(l.vals)-c, 0):]
		for len(vals) > 0 { // oldest first, so the newest ends up in front
			n := min(len(vals), chunk)
			args = append(args, "lpushn", rel, l.capacity, strconv.Itoa(n))
			args = append(args, vals[:n]...)
			vals = vals[n:]
		}
	}
	for _, k := range aorder {
		a := avgs[k]
		if a.seq != nil && slices.Contains(a.seq, any("avgrem")) {
			args = append(args, a.seq...)
			continue
		}
		args = append(args, "avgaddn", k[0], k[1], strconv.FormatInt(a.sum, 10), strconv.FormatInt(a.n, 10))
	}
	return args
}

// grouped appends op on rel with vals (width values per item) in chunks.
func grouped(args []any, op, rel string, vals []any, width int) []any {
	for len(vals) > 0 {
		n := min(len(vals), chunk*width)
		args = append(args, op, rel, strconv.Itoa(n/width))
		args = append(args, vals[:n]...)
		vals = vals[n:]
	}
	return args
}
