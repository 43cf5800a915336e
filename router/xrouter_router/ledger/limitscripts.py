"""The Lua scripts behind ``limits.py``: each runs atomically in Redis, on Redis's
clock (``TIME``), so every replica counts the same calendar-minute windows."""

ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minute = math.floor(now / 60000)
local retry = 60000 - (now % 60000)
local base = KEYS[1]
local rpm, tpm, conc, ttl, want = string.match(ARGV[1], '(-?%d+) (-?%d+) (-?%d+) (%d+) (%d+)')
rpm, tpm, conc, ttl, want = tonumber(rpm), tonumber(tpm), tonumber(conc), tonumber(ttl), tonumber(want)
local rpm_key = base .. ':rpm:' .. minute
local tpm_key = base .. ':tpm:' .. minute
local conc_key = base .. ':conc'
if tpm >= 0 then
  local used = tonumber(redis.call('GET', tpm_key) or '0')
  if used >= tpm then return {2, retry} end
end
if rpm >= 0 then
  local n = tonumber(redis.call('GET', rpm_key) or '0')
  if n >= rpm then return {1, retry} end
end
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', conc_key, '-inf', now)
  if redis.call('ZCARD', conc_key) >= conc then return {3, 1000} end
end
if rpm >= 0 then
  redis.call('INCR', rpm_key)
  redis.call('PEXPIRE', rpm_key, 61000)
end
if conc >= 0 then
  redis.call('ZADD', conc_key, now + ttl, ARGV[2])
  redis.call('PEXPIRE', conc_key, ttl)
end
if tpm >= 0 and want > 0 then  -- the request's tokens, reserved until it settles
  redis.call('INCRBY', tpm_key, want)
  redis.call('PEXPIRE', tpm_key, 61000)
end
return {0, minute}
"""

# Grants up to ARGV[1]'s block of RPM tokens from the window's shared counter at
# once; returns {granted (-1 rpm, -2 tpm refused), ms left in the window, tpm used}.
LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minute = math.floor(now / 60000)
local retry = 60000 - (now % 60000)
local rpm, tpm, block = string.match(ARGV[1], '(-?%d+) (-?%d+) (%d+)')
rpm, tpm, block = tonumber(rpm), tonumber(tpm), tonumber(block)
local used = tonumber(redis.call('GET', KEYS[1] .. ':tpm:' .. minute) or '0')
if tpm >= 0 and used >= tpm then return {-2, retry, used} end
local rpm_key = KEYS[1] .. ':rpm:' .. minute
local n = tonumber(redis.call('GET', rpm_key) or '0')
local grant = math.min(block, rpm - n)
if grant <= 0 then return {-1, retry, used} end
redis.call('INCRBY', rpm_key, grant)
redis.call('PEXPIRE', rpm_key, 61000)
return {grant, retry, used}
"""

# ARGV: tokens used, request id ('' without a slot), tokens reserved, window of the
# reservation. The reservation's window is corrected to what was used; if that window
# has gone, the tokens count in the current one.
SETTLE = """
local t = redis.call('TIME')
local minute = math.floor((tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) / 60000)
local tokens = tonumber(ARGV[1])
local held, m = tonumber(ARGV[3] or '0'), tonumber(ARGV[4] or '-1')
local reserved_key = KEYS[1] .. ':tpm:' .. m
if held > 0 and m >= 0 and redis.call('EXISTS', reserved_key) == 1 then
  redis.call('INCRBY', reserved_key, tokens - held)
elseif tokens > 0 then
  local k = KEYS[1] .. ':tpm:' .. minute
  redis.call('INCRBY', k, tokens)
  redis.call('PEXPIRE', k, 61000)
end
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[1] .. ':conc', ARGV[2]) end
return 0
"""

# Pushes the expiry of this process's live concurrency slots of one key forward (XX:
# a slot that has already expired or been released is not brought back).
TOUCH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local conc_key = KEYS[1] .. ':conc'
for i = 2, #ARGV do redis.call('ZADD', conc_key, 'XX', now + ttl, ARGV[i]) end
redis.call('PEXPIRE', conc_key, ttl)
return 0
"""
