"""The Lua scripts behind ``budgetguard.py``: a key's budget account in Redis, shared by
every replica, changed atomically. One hash per account (``KEYS[1]``) holds ``spent``
and ``reserved`` (USD); ``KEYS[1]:res`` (a sorted set: request id -> expiry) and
``KEYS[1]:amt`` (a hash: request id -> USD) hold the live reservations, so a
replica that dies holding some frees them after their TTL."""

# Drops the account's expired reservations; shared by the scripts below.
_EXPIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local acct, res, amt = KEYS[1], KEYS[1] .. ':res', KEYS[1] .. ':amt'
local stale = redis.call('ZRANGEBYSCORE', res, '-inf', now)
for _, rid in ipairs(stale) do
  local a = tonumber(redis.call('HGET', amt, rid) or '0')
  redis.call('HINCRBYFLOAT', acct, 'reserved', -a)
  redis.call('HDEL', amt, rid)
  redis.call('ZREM', res, rid)
end
"""

# ARGV: budget, amount, request id, ttl ms, expire-at ms (0: never). Returns
# {verdict, spent, reserved} as strings: verdict 0 admitted (amount now reserved),
# 1 refused (nothing is left), -1 the account is not loaded (read PostgreSQL first).
RESERVE = (
    _EXPIRE
    + """
local spent = redis.call('HGET', acct, 'spent')
if not spent then return {'-1', '0', '0'} end
local reserved = tonumber(redis.call('HGET', acct, 'reserved') or '0')
spent = tonumber(spent)
local budget, amount, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
if spent + reserved >= budget then
  return {'1', tostring(spent), tostring(reserved)}
end
redis.call('HINCRBYFLOAT', acct, 'reserved', amount)
redis.call('HSET', amt, ARGV[3], amount)
redis.call('ZADD', res, now + ttl, ARGV[3])
local at = tonumber(ARGV[5])
local keep = now + ttl
if at > 0 then keep = math.max(at, keep) end
for _, k in ipairs({acct, res, amt}) do
  if at > 0 then redis.call('PEXPIREAT', k, keep) elseif k ~= acct then redis.call('PEXPIRE', k, ttl) end
end
return {'0', tostring(spent), tostring(reserved + amount)}
"""
)

# ARGV: request id ('' for costs settled without a reservation), cost. Frees the
# request's reservation (if still held) and adds what it really cost.
SETTLE = (
    _EXPIRE
    + """
if ARGV[1] ~= '' then
  local a = redis.call('HGET', amt, ARGV[1])
  if a then
    redis.call('HINCRBYFLOAT', acct, 'reserved', -tonumber(a))
    redis.call('HDEL', amt, ARGV[1])
    redis.call('ZREM', res, ARGV[1])
  end
end
local cost = tonumber(ARGV[2])
if cost > 0 and redis.call('HEXISTS', acct, 'spent') == 1 then
  redis.call('HINCRBYFLOAT', acct, 'spent', cost)
end
return 0
"""
)

# ARGV: spend recorded in PostgreSQL, expire-at ms (0: never). Loads the account, or
# raises its spend to PostgreSQL's figure (never lowers it: what Redis has counted
# beyond it are rows not written yet). Returns {spent, reserved}.
LOAD = (
    _EXPIRE
    + """
local db = tonumber(ARGV[1])
local spent = tonumber(redis.call('HGET', acct, 'spent') or '-1')
if db > spent then
  redis.call('HSET', acct, 'spent', tostring(db))
  spent = db
end
local at = tonumber(ARGV[2])
if at > 0 then redis.call('PEXPIREAT', acct, at) end
return {tostring(spent), redis.call('HGET', acct, 'reserved') or '0'}
"""
)

# Reads the account without changing it: {spent or '', reserved}.
PEEK = (
    _EXPIRE
    + """
return {redis.call('HGET', acct, 'spent') or '', redis.call('HGET', acct, 'reserved') or '0'}
"""
)

# A replica's lease of budget: one reservation (id ARGV[2]) that the replica admits
# requests into by itself. ARGV: budget, lease id, floor (USD the replica may have
# admitted into the lease, less the cost now settled: always kept), size wanted, cost
# to add (settled since the last call), ttl ms, expire-at ms. Atomically, the cost
# moves from the lease to ``spent`` and the lease is set to the size wanted, as far as
# it fits under the budget, never under the floor. The floor was reserved already, so
# keeping it adds nothing to spent + reserved. Returns {lease (USD), spent, reserved}
# ({'-1'...}: not loaded).
LEASE = (
    _EXPIRE
    + """
if not redis.call('HGET', acct, 'spent') then return {'-1', '0', '0'} end
local budget, id = tonumber(ARGV[1]), ARGV[2]
local floor, want, cost = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local ttl, at = tonumber(ARGV[6]), tonumber(ARGV[7])
if cost > 0 then redis.call('HINCRBYFLOAT', acct, 'spent', cost) end
local spent = tonumber(redis.call('HGET', acct, 'spent'))
local old = tonumber(redis.call('HGET', amt, id) or '0')
local others = tonumber(redis.call('HGET', acct, 'reserved') or '0') - old
local grant = math.max(floor, math.min(want, budget - spent - others))
redis.call('HINCRBYFLOAT', acct, 'reserved', grant - old)
if grant > 0 then
  redis.call('HSET', amt, id, grant)
  redis.call('ZADD', res, now + ttl, id)
  local keep = now + ttl
  if at > 0 then keep = math.max(at, keep) end
  for _, k in ipairs({res, amt}) do redis.call('PEXPIREAT', k, keep) end
else
  redis.call('HDEL', amt, id)
  redis.call('ZREM', res, id)
end
return {tostring(grant), tostring(spent), tostring(others + grant)}
"""
)
