//! The Lua scripts that keep a tenant's quota counters in Redis. Each runs atomically, which is
//! what makes the quota exact across replicas.
//!
//! Per tenant and period, under one key base: `used` (a hash: invocations, fuel, wall ms and
//! failures settled so far), `held` (a hash: the sums of the holds), `holds` (a sorted set of
//! hold ids by deadline) and `hold_size` (a hash: each hold's `invocations:fuel`). A hold is a
//! replica's lease on part of the quota (see [`super::leases`]).
//!
//! Counters are sent as strings, never as Lua numbers: Redis turns a Lua number into text
//! with 14 significant digits, which is not an integer above 10^14. For the same reason
//! nothing is negated by prefixing `-` to a zero.

/// KEYS: used, held, holds, hold_size. ARGV: hold id, max invocations (-1: none), max fuel
/// (-1: none), invocations wanted, fuel wanted, fuel one invocation needs, hold deadline from
/// now (ms), counters' expiry (ms), share (the most of what is left one lease may take is
/// 1/share of it).
///
/// Drops the holds past their deadline, then answers `{-1}` when the period's counters are
/// not in Redis yet, `{1, invocations, fuel}` when a lease was granted, or `{0, 1
/// (invocations) | 2 (fuel), 1 if used up, not only held}` when the quota refuses. A lease
/// gets at least one invocation and the fuel of one (cut to what is left), at most what was
/// wanted or 1/share of what is left, and no more invocations than its fuel covers: within
/// `share` invocations (or `share` invocations' fuel) of a quota every lease is one
/// invocation.
pub const RESERVE: &str = r"
local function negated(n) if n == '0' then return '0' end return '-' .. n end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(expired) do
  local size = redis.call('HGET', KEYS[4], id) or '0:0'
  local inv, fuel = string.match(size, '^(%d+):(%d+)$')
  redis.call('HINCRBY', KEYS[2], 'inv', negated(inv or '0'))
  redis.call('HINCRBY', KEYS[2], 'fuel', negated(fuel or '0'))
  redis.call('HDEL', KEYS[4], id)
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local used = redis.call('HMGET', KEYS[1], 'inv', 'fuel')
local held = redis.call('HMGET', KEYS[2], 'inv', 'fuel')
local used_inv, used_fuel = tonumber(used[1] or '0'), tonumber(used[2] or '0')
local held_inv = math.max(tonumber(held[1] or '0'), 0)
local held_fuel = math.max(tonumber(held[2] or '0'), 0)
local max_inv, max_fuel = tonumber(ARGV[2]), tonumber(ARGV[3])
local share = tonumber(ARGV[9])
local inv = tonumber(ARGV[4])
if max_inv >= 0 then
  local left = max_inv - used_inv - held_inv
  if left <= 0 then return {0, 1, used_inv >= max_inv and 1 or 0} end
  inv = math.max(1, math.min(inv, math.floor(left / share)))
end
local fuel = 0
if max_fuel >= 0 then
  local left = max_fuel - used_fuel - held_fuel
  if left <= 0 then return {0, 2, used_fuel >= max_fuel and 1 or 0} end
  local need = tonumber(ARGV[6])
  local one = math.min(need, left)
  if left < share * need then
    inv, fuel = 1, one
  else
    fuel = math.max(one, math.min(tonumber(ARGV[5]), math.floor(left / share)))
    if need > 0 then inv = math.max(1, math.min(inv, math.floor(fuel / need))) end
  end
end
local inv_s, fuel_s = string.format('%d', inv), string.format('%d', fuel)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], inv_s .. ':' .. fuel_s)
redis.call('HINCRBY', KEYS[2], 'inv', inv_s)
redis.call('HINCRBY', KEYS[2], 'fuel', fuel_s)
for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[8]) end
return {1, inv, fuel}
";

/// Loads a period's counters (read from the database) unless another replica did first.
pub const LOAD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'inv', ARGV[1], 'fuel', ARGV[2], 'wall_ms', ARGV[3], 'fail', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
";

/// Settles a batch: nine values per settlement (key base; hold id, or '' for usage counted by
/// this replica's own meter; the invocations and fuel the hold keeps, -1 and 0 to remove it;
/// counted 0/1; invocations, fuel, wall ms, failures).
///
/// A hold is removed once, and shrinking sets its size, so repeating either changes nothing
/// about what is held. Usage is added whether or not the hold is still there (it may have
/// lapsed): a batch sent again after its answer was lost counts twice, which errs towards
/// refusing. A period whose counters are gone (expired, or Redis restarted) is loaded from
/// the database on its next admission instead.
pub const SETTLE: &str = r"
local function negated(n) if n == '0' then return '0' end return '-' .. n end
local i = 1
while i <= #ARGV do
  local base, id, keep_inv, keep_fuel = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if id ~= '' then
    local size = redis.call('HGET', base .. ':hold_size', id)
    if size then
      local inv, fuel = string.match(size, '^(%d+):(%d+)$')
      inv, fuel = inv or '0', fuel or '0'
      if keep_inv == '-1' then
        redis.call('ZREM', base .. ':holds', id)
        redis.call('HDEL', base .. ':hold_size', id)
        redis.call('HINCRBY', base .. ':held', 'inv', negated(inv))
        redis.call('HINCRBY', base .. ':held', 'fuel', negated(fuel))
      else
        redis.call('HSET', base .. ':hold_size', id, keep_inv .. ':' .. keep_fuel)
        local less_inv = string.format('%d', tonumber(keep_inv) - tonumber(inv))
        local less_fuel = string.format('%d', tonumber(keep_fuel) - tonumber(fuel))
        redis.call('HINCRBY', base .. ':held', 'inv', less_inv)
        redis.call('HINCRBY', base .. ':held', 'fuel', less_fuel)
      end
    end
  end
  local used = base .. ':used'
  if ARGV[i + 4] == '1' and redis.call('EXISTS', used) == 1 then
    redis.call('HINCRBY', used, 'inv', ARGV[i + 5])
    redis.call('HINCRBY', used, 'fuel', ARGV[i + 6])
    redis.call('HINCRBY', used, 'wall_ms', ARGV[i + 7])
    redis.call('HINCRBY', used, 'fail', ARGV[i + 8])
  end
  i = i + 9
end
return 1
";
