package redisstore

import "github.com/redis/go-redis/v9"

// The scripts below name keys in ARGV rather than KEYS because a reader
// resolves the generation first and derives the keys from it inside the
// script; that keeps a read at one round trip and makes it atomic with
// respect to a generation switch. It also means the package targets a
// single Redis server (or a primary with replicas), not Redis Cluster.

// luaApplyOps applies the write operations ARGV[i..] under the key prefix
// pre. Every operation is a name, a relative key and a fixed number of
// arguments; the Go side (Tx) only ever produces well-formed lists, so the
// loop validates nothing and cannot fail half-way on input it generated.
const luaApplyOps = `
local function apply(pre, i)
  while i <= #ARGV do
    local op, k = ARGV[i], pre .. ARGV[i+1]
    if op == 'hset' then
      redis.call('HSET', k, ARGV[i+2], ARGV[i+3]); i = i + 4
    elseif op == 'hdel' then
      redis.call('HDEL', k, ARGV[i+2]); i = i + 3
    elseif op == 'zadd' then
      redis.call('ZADD', k, ARGV[i+2], ARGV[i+3]); i = i + 4
    elseif op == 'zrem' then
      redis.call('ZREM', k, ARGV[i+2]); i = i + 3
    elseif op == 'lpush' then
      redis.call('LPUSH', k, ARGV[i+2]); redis.call('LTRIM', k, 0, tonumber(ARGV[i+3]) - 1); i = i + 4
    elseif op == 'avgadd' then
      redis.call('HINCRBY', k, ARGV[i+2] .. '\0s', ARGV[i+3])
      redis.call('HINCRBY', k, ARGV[i+2] .. '\0n', 1); i = i + 4
    elseif op == 'avgrem' then
      local n = tonumber(redis.call('HGET', k, ARGV[i+2] .. '\0n') or '0')
      if n <= 1 then
        redis.call('HDEL', k, ARGV[i+2] .. '\0s', ARGV[i+2] .. '\0n')
      else
        redis.call('HINCRBY', k, ARGV[i+2] .. '\0s', -tonumber(ARGV[i+3]))
        redis.call('HINCRBY', k, ARGV[i+2] .. '\0n', -1)
      end
      i = i + 4
    elseif op == 'hsetn' then
      local n = tonumber(ARGV[i+2])
      redis.call('HSET', k, unpack(ARGV, i+3, i+2+2*n)); i = i + 3 + 2*n
    elseif op == 'hdeln' then
      local n = tonumber(ARGV[i+2])
      redis.call('HDEL', k, unpack(ARGV, i+3, i+2+n)); i = i + 3 + n
    elseif op == 'zaddn' then
      local n = tonumber(ARGV[i+2])
      redis.call('ZADD', k, unpack(ARGV, i+3, i+2+2*n)); i = i + 3 + 2*n
    elseif op == 'zremn' then
      local n = tonumber(ARGV[i+2])
      redis.call('ZREM', k, unpack(ARGV, i+3, i+2+n)); i = i + 3 + n
    elseif op == 'lpushn' then
      local n = tonumber(ARGV[i+3])
      redis.call('LPUSH', k, unpack(ARGV, i+4, i+3+n))
      redis.call('LTRIM', k, 0, tonumber(ARGV[i+2]) - 1); i = i + 4 + n
    elseif op == 'avgaddn' then
      redis.call('HINCRBY', k, ARGV[i+2] .. '\0s', ARGV[i+3])
      redis.call('HINCRBY', k, ARGV[i+2] .. '\0n', ARGV[i+4]); i = i + 5
    elseif op == 'del' then
      redis.call('DEL', k); i = i + 2
    else
      return redis.error_reply('redisstore: unknown operation ' .. tostring(op))
    end
  end
end
`

// luaLive reports whether the lease hash lk is held with token tok and
// unexpired by the server's clock, and returns the current token (0 when
// the lease is free or expired).
const luaLive = `
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function current(lk, now)
  local h = redis.call('HMGET', lk, 'owner', 'token', 'exp')
  if h[1] and tonumber(h[3]) > now then return h end
  return nil
end
`

// commitScript applies one batch: ARGV[1] the generation key, ARGV[2] the
// writer's generation, ARGV[3] the key prefix of that generation, ARGV[4]
// the checkpoint hash, ARGV[5] its field, ARGV[6] the checkpoint the batch
// started from ("" for none), ARGV[7] the new checkpoint ("" to leave it:
// Replay), ARGV[8] "1" to check ARGV[6], ARGV[9] a lease key to fence on
// ("" for none), ARGV[10] the fencing token, ARGV[11] "1" to make the
// writer's generation current (a live writer after a swap that did not
// reach Redis; a rebuild's shadow passes "0"), then the operations.
//
// It refuses, writing nothing, when the generation moved past the
// writer's (a newer rebuild was swapped in), when the lease is not the
// writer's, or when the checkpoint is not the one the batch started from.
var commitScript = redis.NewScript(luaApplyOps + luaLive + `
local cur = tonumber(redis.call('GET', ARGV[1]) or '1')
local gen = tonumber(ARGV[2])
if cur > gen then return {'generation', tostring(cur)} end
if ARGV[9] ~= '' then
  local h = current(ARGV[9], nowms())
  if not h then return {'fenced', '0'} end
  if h[2] ~= ARGV[10] then return {'fenced', h[2]} end
end
if ARGV[8] == '1' then
  local cp = redis.call('HGET', ARGV[4], ARGV[5]) or ''
  if cp ~= ARGV[6] then return {'conflict', cp} end
end
local err = apply(ARGV[3], 12)
if err then return err end
if ARGV[7] ~= '' then redis.call('HSET', ARGV[4], ARGV[5], ARGV[7]) end
if cur < gen and ARGV[11] == '1' then redis.call('SET', ARGV[1], gen) end
return {'ok', ''}
`)

// writeScript applies operations to the current generation, outside any
// projector: ARGV[1] the generation key, ARGV[2] the namespace's base
// ("prefix:projector"), then the operations.
var writeScript = redis.NewScript(luaApplyOps + `
local g = redis.call('GET', ARGV[1]) or '1'
local err = apply(ARGV[2] .. ':g' .. g .. ':', 3)
if err then return err end
return g
`)

// readScript resolves the current generation and runs read operations in
// it: ARGV[1] the generation key, ARGV[2] the base, then groups of four:
// operation, relative key, two arguments. It returns the generation and
// one reply per operation.
var readScript = redis.NewScript(`
local g = redis.call('GET', ARGV[1]) or '1'
local pre = ARGV[2] .. ':g' .. g .. ':'
local out = {g}
for i = 3, #ARGV, 4 do
  local op, k, a, b = ARGV[i], pre .. ARGV[i+1], ARGV[i+2], ARGV[i+3]
  local r
  if op == 'hget' then r = redis.call('HGET', k, a)
  elseif op == 'hmget' then r = redis.call('HMGET', k, a, b)
  elseif op == 'zrange' then r = redis.call('ZRANGE', k, a, b, 'WITHSCORES')
  elseif op == 'zlex' then r = redis.call('ZRANGE', k, a, '+', 'BYLEX', 'LIMIT', 0, b)
  elseif op == 'zscore' then r = redis.call('ZSCORE', k, a)
  elseif op == 'zcard' then r = redis.call('ZCARD', k)
  elseif op == 'hlen' then r = redis.call('HLEN', k)
  elseif op == 'lrange' then r = redis.call('LRANGE', k, a, b)
  else return redis.error_reply('redisstore: unknown read ' .. tostring(op)) end
  out[#out+1] = r
end
return out
`)

// hgetScript is readScript for one HGET: ARGV[1] the generation key,
// ARGV[2] the base, ARGV[3] the hash relative to the generation, ARGV[4]
// the field. It returns the value or nil.
var hgetScript = redis.NewScript(`
local g = redis.call('GET', ARGV[1]) or '1'
return redis.call('HGET', ARGV[2] .. ':g' .. g .. ':' .. ARGV[3], ARGV[4])
`)

// nextGenScript allocates a generation number for a rebuild: above the
// current one and above every number handed out before (ARGV[1] the
// generation key, ARGV[2] the counter).
var nextGenScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', ARGV[1]) or '1')
local n = redis.call('INCR', ARGV[2])
if n <= cur then n = cur + 1; redis.call('SET', ARGV[2], n) end
return n
`)

// switchScript makes ARGV[2] the current generation unless a newer one
// already is; it returns the generation in force afterwards.
var switchScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', ARGV[1]) or '1')
local gen = tonumber(ARGV[2])
if gen > cur then redis.call('SET', ARGV[1], gen); return gen end
return cur
`)
