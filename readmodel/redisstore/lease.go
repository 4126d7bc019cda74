package redisstore

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/cqrskit/cqrs/projection"
	"github.com/cqrskit/cqrs/store"
	"github.com/redis/go-redis/v9"
)

// Leases is a projection.Leaser and projection.FencedCheckpoints on Redis,
// for runners in several processes. Its keys, under a prefix:
//
//	<prefix>:lease:<name>      the lease: a hash of owner, token, expiry (ms)
//	<prefix>:leasetok:<name>   the last token handed out for name (never deleted)
//	<prefix>:leases            the names, for List (a sorted set)
//	<prefix>:checkpoints       checkpoints by name (a hash)
//
// Every operation is one Lua script, so it is atomic, and reads the time
// from Redis (TIME): expiry is decided by one clock whatever the clocks of
// the processes. Tokens come from INCR on a key that is never deleted, so
// they grow with every new owner and are never reused, even after a lease
// expired or was released. A Projector on a Namespace with the same prefix
// conditions its commits on these leases (projection.FenceFrom).
//
// A Redis that loses writes (no fsync, a crash) can lose a token increment
// too; run the lease store on a Redis with appendfsync always, or use
// pgstore's leases, when that matters more than speed.
type Leases struct {
	rdb    redis.UniversalClient
	prefix string
}

var (
	_ projection.Leaser            = (*Leases)(nil)
	_ projection.FencedCheckpoints = (*Leases)(nil)
)

// NewLeases returns the leases and checkpoints under prefix.
func NewLeases(rdb redis.UniversalClient, prefix string) *Leases {
	return &Leases{rdb: rdb, prefix: prefix}
}

func (l *Leases) tokKey(name string) string { return tokenKey(l.prefix, name) }
func (l *Leases) idxKey() string            { return l.prefix + ":leases" }
func (l *Leases) cpKey() string             { return l.prefix + ":checkpoints" }

var acquireScript = redis.NewScript(luaLive + `
local now = nowms()
local h = current(ARGV[1], now)
local exp = now + tonumber(ARGV[5])
if h then
  if h[1] ~= ARGV[4] then return {'held', h[1], h[2], h[3]} end
  redis.call('HSET', ARGV[1], 'exp', exp)
  return {'ok', ARGV[4], h[2], tostring(exp)}
end
local tok = redis.call('INCR', ARGV[2])
redis.call('HSET', ARGV[1], 'owner', ARGV[4], 'token', tok, 'exp', exp)
redis.call('ZADD', ARGV[3], 0, ARGV[6])
return {'ok', ARGV[4], tostring(tok), tostring(exp)}
`)

var renewScript = redis.NewScript(luaLive + `
local now = nowms()
local h = current(ARGV[1], now)
if not h then return {'fenced', '0'} end
if h[2] ~= ARGV[2] then return {'fenced', h[2]} end
local exp = now + tonumber(ARGV[3])
redis.call('HSET', ARGV[1], 'exp', exp)
return {'ok', h[1], h[2], tostring(exp)}
`)

var releaseScript = redis.NewScript(`
if redis.call('HGET', ARGV[1], 'token') == ARGV[2] then
  redis.call('DEL', ARGV[1])
  redis.call('ZREM', ARGV[3], ARGV[4])
end
return 1
`)

var holderScript = redis.NewScript(luaLive + `
local h = current(ARGV[1], nowms())
if not h then return {} end
return {h[1], h[2], h[3]}
`)

// listScript returns name, owner, token, expiry of the live leases whose
// names start with ARGV[2], in name order, and drops the names of leases
// that are gone.
var listScript = redis.NewScript(luaLive + `
local now = nowms()
local from = '-'
if ARGV[2] ~= '' then from = '[' .. ARGV[2] end
local names = redis.call('ZRANGE', ARGV[1], from, '+', 'BYLEX')
local out = {}
for _, n in ipairs(names) do
  if string.sub(n, 1, #ARGV[2]) ~= ARGV[2] then break end
  local h = current(ARGV[3] .. n, now)
  if h then
    out[#out+1] = n; out[#out+1] = h[1]; out[#out+1] = h[2]; out[#out+1] = h[3]
  elseif redis.call('EXISTS', ARGV[3] .. n) == 0 then
    redis.call('ZREM', ARGV[1], n)
  end
end
return out
`)

// saveScript saves checkpoint ARGV[3] (position ARGV[4]) under ARGV[2]
// unless the stored position is higher, and, with a lease key in ARGV[5],
// only while token ARGV[6] holds it.
var saveScript = redis.NewScript(luaLive + `
if ARGV[5] ~= '' then
  local h = current(ARGV[5], nowms())
  if not h then return {'fenced', '0'} end
  if h[2] ~= ARGV[6] then return {'fenced', h[2]} end
end
local cur = redis.call('HGET', ARGV[1], ARGV[2])
if cur then
  local pos = tonumber(string.match(cur, '^(%d+)'))
  if pos > tonumber(ARGV[4]) then return {'conflict', cur} end
end
redis.call('HSET', ARGV[1], ARGV[2], ARGV[3])
return {'ok', ''}
`)

func ttlMillis(ttl time.Duration) string {
	return strconv.FormatInt(max(ttl.Milliseconds(), 1), 10)
}

func msTime(s string) time.Time {
	ms, _ := strconv.ParseInt(s, 10, 64)
	return time.UnixMilli(ms)
}

func parseToken(s string) uint64 {
	t, _ := strconv.ParseUint(s, 10, 64)
	return t
}

// Acquire implements projection.Leaser. Bad arguments give an error
// matching store.ErrInvalid; a lease held by another owner a
// *projection.LeaseHeldError.
func (l *Leases) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (projection.Lease, error) {
	if err := projection.CheckAcquireArgs(name, owner, ttl); err != nil {
		return projection.Lease{}, err
	}
	if err := ctx.Err(); err != nil {
		return projection.Lease{}, err
	}
	res, err := acquireScript.Run(ctx, l.rdb, nil, leaseKey(l.prefix, name), l.tokKey(name), l.idxKey(), owner, ttlMillis(ttl), name).StringSlice()
	if err != nil {
		return projection.Lease{}, wrap("acquire lease", err)
	}
	got := projection.Lease{Name: name, Owner: res[1], Token: parseToken(res[2]), Expires: msTime(res[3])}
	if res[0] == "held" {
		return projection.Lease{}, &projection.LeaseHeldError{Held: got}
	}
	return got, nil
}

// Renew implements projection.Leaser.
func (l *Leases) Renew(ctx context.Context, ls projection.Lease, ttl time.Duration) (projection.Lease, error) {
	if err := projection.CheckRenewArgs(ls, ttl); err != nil {
		return projection.Lease{}, err
	}
	if err := ctx.Err(); err != nil {
		return projection.Lease{}, err
	}
	res, err := renewScript.Run(ctx, l.rdb, nil, leaseKey(l.prefix, ls.Name), strconv.FormatUint(ls.Token, 10), ttlMillis(ttl)).StringSlice()
	if err != nil {
		return projection.Lease{}, wrap("renew lease", err)
	}
	if res[0] == "fenced" {
		return projection.Lease{}, &projection.FencedError{Name: ls.Name, Token: ls.Token, Current: parseToken(res[1])}
	}
	return projection.Lease{Name: ls.Name, Owner: res[1], Token: parseToken(res[2]), Expires: msTime(res[3])}, nil
}

// Release implements projection.Leaser.
func (l *Leases) Release(ctx context.Context, ls projection.Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := releaseScript.Run(ctx, l.rdb, nil, leaseKey(l.prefix, ls.Name), strconv.FormatUint(ls.Token, 10), l.idxKey(), ls.Name).Err(); err != nil {
		return wrap("release lease", err)
	}
	return nil
}

// Holder implements projection.Leaser.
func (l *Leases) Holder(ctx context.Context, name string) (projection.Lease, error) {
	if err := ctx.Err(); err != nil {
		return projection.Lease{}, err
	}
	res, err := holderScript.Run(ctx, l.rdb, nil, leaseKey(l.prefix, name)).StringSlice()
	if err != nil {
		return projection.Lease{}, wrap("read lease", err)
	}
	if len(res) < 3 {
		return projection.Lease{Name: name}, nil
	}
	return projection.Lease{Name: name, Owner: res[0], Token: parseToken(res[1]), Expires: msTime(res[2])}, nil
}

// List implements projection.Leaser.
func (l *Leases) List(ctx context.Context, prefix string) ([]projection.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, err := listScript.Run(ctx, l.rdb, nil, l.idxKey(), prefix, l.prefix+":lease:").StringSlice()
	if err != nil {
		return nil, wrap("list leases", err)
	}
	var out []projection.Lease
	for i := 0; i+3 < len(res); i += 4 {
		out = append(out, projection.Lease{Name: res[i], Owner: res[i+1], Token: parseToken(res[i+2]), Expires: msTime(res[i+3])})
	}
	return out, nil
}

// Load implements projection.CheckpointStore.
func (l *Leases) Load(ctx context.Context, name string) (projection.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return projection.Checkpoint{}, err
	}
	raw, err := l.rdb.HGet(ctx, l.cpKey(), name).Result()
	if errors.Is(err, redis.Nil) {
		return projection.Checkpoint{}, nil
	}
	if err != nil {
		return projection.Checkpoint{}, wrap("load checkpoint", err)
	}
	return decodeCP(raw)
}

// Save implements projection.CheckpointStore: it never moves a checkpoint
// backwards (*store.ConflictError).
func (l *Leases) Save(ctx context.Context, name string, cp projection.Checkpoint) error {
	return l.save(ctx, name, cp, nil)
}

// SaveFenced implements projection.FencedCheckpoints.
func (l *Leases) SaveFenced(ctx context.Context, name string, cp projection.Checkpoint, fence projection.Lease) error {
	return l.save(ctx, name, cp, &fence)
}

func (l *Leases) save(ctx context.Context, name string, cp projection.Checkpoint, fence *projection.Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fk, tok := "", ""
	if fence != nil {
		fk, tok = leaseKey(l.prefix, fence.Name), strconv.FormatUint(fence.Token, 10)
	}
	res, err := saveScript.Run(ctx, l.rdb, nil, l.cpKey(), name, encodeCP(cp), strconv.FormatUint(uint64(cp.Position), 10), fk, tok).StringSlice()
	if err != nil {
		return wrap("save checkpoint", err)
	}
	switch res[0] {
	case "fenced":
		return &projection.FencedError{Name: fence.Name, Token: fence.Token, Current: parseToken(res[1])}
	case "conflict":
		cur, _ := decodeCP(res[1])
		return &store.ConflictError{Table: "checkpoints", Key: name, Expected: uint64(cp.Position), Actual: uint64(cur.Position)}
	}
	return nil
}

// tokenKey is the counter of the fencing tokens issued for name under
// prefix; it is never deleted, so tokens never repeat.
func tokenKey(prefix, name string) string { return prefix + ":leasetok:" + name }

// leaseKey is the hash holding the lease on name under prefix.
func leaseKey(prefix, name string) string { return prefix + ":lease:" + name }
