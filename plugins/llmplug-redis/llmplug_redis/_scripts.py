"""The Lua scripts. Each runs atomically on the server and reads the time from Redis (``TIME``),
never from a client, so clients with skewed clocks still share one timeline.

Times are integer microseconds since the epoch, kept below 2**53 so Lua's doubles hold them
exactly; they are written with ``%.0f`` (``tostring`` would print 1.7e+15)."""

from __future__ import annotations

__all__ = ["HEALTH", "RATE"]

#: GCRA with reservations. KEYS: bucket, then (when reading health) the health hash, one lease
#: set per key fingerprint and one owner set per key. ARGV: op, cost, interval (us per token),
#: tau (capacity * interval), the number of keys, this process's lease prefix, the keys'
#: fingerprints. The others' leases are the lease set's size less this process's own, counted
#: by name in the owner set (``ZLEXCOUNT`` over the prefix: O(log n), not a scan) as the script
#: runs, whatever of this process's changes are still on their way.
#:
#: ``take`` always reserves: it moves the theoretical arrival time (TAT) by the cost and answers
#: how long the caller waits for its turn (0: go now). Turns are handed out in the order calls
#: reach Redis, and nobody polls. ``give`` returns tokens (a cancelled waiter, a reconciled
#: estimate), ``charge`` adds a debt, ``tighten`` believes a server that says fewer are left,
#: ``reset`` forgets the bucket. The key expires when the bucket is full again (idle).
RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local op = ARGV[1]
local cost = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local tau = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = 0
if op == 'take' then
  tat = tat + cost * interval
  wait = tat - tau - now
  if wait < 0 then wait = 0 end
elseif op == 'give' then
  tat = math.max(now, tat - cost * interval)
elseif op == 'charge' then
  -- A debt of at most one capacity, as the local bucket's (a wrong count must not stop the
  -- budget for good).
  tat = math.min(tat + cost * interval, math.max(tat, now + tau + tau))
elseif op == 'tighten' then
  tat = math.max(tat, now + tau - cost * interval)
elseif op == 'reset' then
  tat = now
end
if tat > now then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
else
  redis.call('DEL', KEYS[1])
end
local out = {math.floor(wait)}
if #KEYS > 1 then
  local n = tonumber(ARGV[5])
  local mine_from = '[' .. ARGV[6]
  local mine_to = '[' .. ARGV[6] .. '\\255'
  for i = 1, n do
    local fp = ARGV[6 + i]
    local left, disabled, reason = 0, 0, ''
    local v = redis.call('HGET', KEYS[2], fp)
    if v then
      local u, d, r = string.match(v, '^(%d+)|(%d)|(.*)$')
      if u and tonumber(u) > now then
        left, disabled, reason = tonumber(u) - now, tonumber(d), r
      else
        redis.call('HDEL', KEYS[2], fp)
      end
    end
    local leases, owners = KEYS[2 + i], KEYS[2 + n + i]
    local gone = redis.call('ZRANGEBYSCORE', leases, '-inf', now)
    if #gone > 0 then
      redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
      for _, m in ipairs(gone) do redis.call('ZREM', owners, m) end
    end
    local mine = redis.call('ZLEXCOUNT', owners, mine_from, mine_to)
    local others = redis.call('ZCARD', leases) - mine
    if others < 0 then others = 0 end
    table.insert(out, math.floor(left))
    table.insert(out, disabled)
    table.insert(out, reason)
    table.insert(out, others)
  end
end
return out
"""

#: Shared key health. KEYS: the health hash, the key's lease set, its owner set. ARGV: op,
#: fingerprint, ... ``cool`` (us, disabled, reason): the cooldown joins the hash unless a longer
#: one is there. ``lease`` (ttl us, members...): leases that expire unless renewed, so a killed
#: process leaks nothing (in both sets). ``release`` (members...): leases given back.
HEALTH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local op = ARGV[1]
if op == 'cool' then
  local untl = now + tonumber(ARGV[3])
  local v = redis.call('HGET', KEYS[1], ARGV[2])
  local cur = v and tonumber(string.match(v, '^(%d+)|')) or 0
  if untl > cur then
    local v2 = string.format('%.0f', untl) .. '|' .. ARGV[4] .. '|' .. ARGV[5]
    redis.call('HSET', KEYS[1], ARGV[2], v2)
  end
  local ttl = math.ceil((untl - now) / 1000) + 1
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  return 1
elseif op == 'lease' then
  local untl = string.format('%.0f', now + tonumber(ARGV[3]))
  for i = 4, #ARGV do
    redis.call('ZADD', KEYS[2], untl, ARGV[i])
    redis.call('ZADD', KEYS[3], 0, ARGV[i])
  end
  local ttl = math.ceil(tonumber(ARGV[3]) / 1000) + 1
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
  return 1
elseif op == 'release' then
  for i = 3, #ARGV do
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('ZREM', KEYS[3], ARGV[i])
  end
  return 1
elseif op == 'own' then
  -- ARGV: op, fp, ttl, this process's prefix, the leases it holds. Its other names here are
  -- releases that never arrived (lost while Redis was out of reach though it kept the lease):
  -- gone now, the held ones renewed.
  local held = {}
  for i = 5, #ARGV do held[ARGV[i]] = true end
  local mine = redis.call('ZRANGEBYLEX', KEYS[3], '[' .. ARGV[4], '[' .. ARGV[4] .. '\255')
  for _, m in ipairs(mine) do
    if not held[m] then
      redis.call('ZREM', KEYS[2], m)
      redis.call('ZREM', KEYS[3], m)
    end
  end
  if #ARGV >= 5 then
    local untl = string.format('%.0f', now + tonumber(ARGV[3]))
    for i = 5, #ARGV do
      redis.call('ZADD', KEYS[2], untl, ARGV[i])
      redis.call('ZADD', KEYS[3], 0, ARGV[i])
    end
    local ttl = math.ceil(tonumber(ARGV[3]) / 1000) + 1
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
  return 1
end
return 0
"""
