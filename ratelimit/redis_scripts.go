package ratelimit

import "github.com/redis/go-redis/v9"

// syncScript takes n tokens from the GCRA bucket at KEYS[1]. Time is Redis's
// (TIME), in microseconds, so no client clock takes part. Lua numbers are
// doubles, exact to 0.25 µs at today's epoch, so comparisons allow 0.5 µs
// (a request that exactly fits is never lost to rounding). ARGV: interval (µs
// per token), capacity (µs of burst), n. The reply is one integer: > 0, the
// tokens were taken and the bucket is full again in that many µs; < 0, they
// were not and could be in minus that many µs.
var syncScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + tonumber(ARGV[3]) * interval
if new - now > capacity + 0.5 then
  return -math.max(1, math.ceil(new - capacity - now))
end
redis.call('SET', KEYS[1], new, 'PX', math.ceil((new - now) / 1000) + 1)
return math.max(1, math.ceil(new - now))
`)

// leaseScript takes between ARGV[4] (need) and ARGV[3] (want) tokens, as
// many as the bucket holds. Reply {taken, µs}: taken > 0 with µs until the
// bucket is full, or taken = 0 with µs until need tokens are there.
var leaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local need = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local avail = math.floor((capacity + 0.5 - (tat - now)) / interval)
if avail < need then
  return {0, math.max(1, math.ceil(tat + need * interval - capacity - now))}
end
local take = math.min(tonumber(ARGV[3]), avail)
local new = tat + take * interval
redis.call('SET', KEYS[1], new, 'PX', math.ceil((new - now) / 1000) + 1)
return {take, math.max(1, math.ceil(new - now))}
`)
