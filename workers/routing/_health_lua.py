"""The Lua scripts of `RedisHealthStore` (workers/routing/_redis_health.py), one per state change.

Owns: the script texts and, above each, its KEYS and ARGV. Every state change of the shared
health store is one of these scripts, so it is atomic across processes and machines. Must not:
import Redis or run anything; the store registers and calls them.
"""

from __future__ import annotations

# Shared Lua helpers. Numbers go back to Redis as '%.17g' strings: Lua's tostring keeps only 14
# digits, which would round unix timestamps to 0.1 ms and make deadlines drift.
LUA_COMMON = """
local function fmt(x) return string.format('%.17g', x) end
local function num(v, d) local n = tonumber(v or '') if n == nil then return d end return n end
local function cool_to(key, untl, now, grace)
  if untl == nil or untl <= now then return end
  if untl > num(redis.call('GET', key), 0) then
    redis.call('SET', key, fmt(untl), 'PX', math.ceil((untl - now + grace) * 1000))
  end
end
local function push_call(key, rec, keep, ttl_ms)
  redis.call('LPUSH', key, rec)
  redis.call('LTRIM', key, 0, keep - 1)
  redis.call('PEXPIRE', key, ttl_ms)
end
local function ewma(old, x, a) if old == nil then return x end return old * (1 - a) + x * a end
"""

# KEYS: st, calls, cool, learned
# ARGV: now, record, latency_ms, cooldown_until, learned_rpm, learned_tpm,
#       keep, state_ttl_ms, grace_s, alpha, learned_ttl_ms
RECORD_SUCCESS = (
    LUA_COMMON
    + """
local now = tonumber(ARGV[1])
local st = KEYS[1]
push_call(KEYS[2], ARGV[2], tonumber(ARGV[7]), ARGV[8])
local a = tonumber(ARGV[10])
local ok = ewma(tonumber(redis.call('HGET', st, 'ok') or ''), 1, a)
local lat = ewma(tonumber(redis.call('HGET', st, 'lat') or ''), tonumber(ARGV[3]), a)
redis.call('HSET', st, 'ok', fmt(ok), 'lat', fmt(lat))
local state = redis.call('HGET', st, 'state') or 'closed'
local open_until = num(redis.call('HGET', st, 'open_until'), 0)
if state == 'open' and now >= open_until then
  -- the half-open probe succeeded: close, and judge the failure rate afresh from now on
  redis.call('HSET', st, 'state', 'closed', 'consec', 0, 'closed_at', ARGV[1],
             'open_until', 0, 'probe_until', 0)
elseif state ~= 'open' then
  redis.call('HSET', st, 'consec', 0)
end
redis.call('PEXPIRE', st, ARGV[8])
cool_to(KEYS[3], tonumber(ARGV[4]), now, tonumber(ARGV[9]))
if ARGV[5] ~= '' then redis.call('HSET', KEYS[4], 'rpm', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[4], 'tpm', ARGV[6]) end
if ARGV[5] ~= '' or ARGV[6] ~= '' then redis.call('PEXPIRE', KEYS[4], ARGV[11]) end
return 1
"""
)

# KEYS: st, calls, cool
# ARGV: now, record, code, open_now, cooldown_until, circuit_failures, failure_rate, min_calls,
#       open_s, circuit_window_s, keep, state_ttl_ms, grace_s, alpha
RECORD_FAILURE = (
    LUA_COMMON
    + """
local now = tonumber(ARGV[1])
local st = KEYS[1]
cool_to(KEYS[3], tonumber(ARGV[5]), now, tonumber(ARGV[13]))
push_call(KEYS[2], ARGV[2], tonumber(ARGV[11]), ARGV[12])
redis.call('PEXPIRE', st, ARGV[12])
if ARGV[3] ~= '0' then return 0 end  -- the request's fault, or throttling: no health verdict
local ok = ewma(tonumber(redis.call('HGET', st, 'ok') or ''), 0, tonumber(ARGV[14]))
local consec = num(redis.call('HGET', st, 'consec'), 0) + 1
redis.call('HSET', st, 'ok', fmt(ok), 'consec', consec)
local state = redis.call('HGET', st, 'state') or 'closed'
local open_until = num(redis.call('HGET', st, 'open_until'), 0)
local open_s = tonumber(ARGV[9])
local target = nil
if ARGV[4] == '1' then
  target = math.max(open_until, now + open_s)
elseif state == 'open' then
  if now >= open_until then target = now + open_s end  -- a failed probe re-opens
elseif consec >= tonumber(ARGV[6]) then
  target = now + open_s
else
  local since = math.max(now - tonumber(ARGV[10]), num(redis.call('HGET', st, 'closed_at'), 0))
  local total, fails = 0, 0
  for _, rec in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    local t, c = string.match(rec, '^([^|]*)|([^|]*)|')
    t = tonumber(t)
    if t ~= nil and t >= since and (c == '0' or c == '1') then
      total = total + 1
      if c == '0' then fails = fails + 1 end
    end
  end
  if total >= tonumber(ARGV[8]) and fails / total >= tonumber(ARGV[7]) then
    target = now + open_s
  end
end
if target ~= nil then
  redis.call('HSET', st, 'state', 'open', 'open_until', fmt(target), 'probe_until', 0)
  return 1
end
return 0
"""
)

# KEYS: st.  ARGV: now, lease_s.  Returns 1 if the caller may send a request.
CLAIM_PROBE = (
    LUA_COMMON
    + """
local now = tonumber(ARGV[1])
if (redis.call('HGET', KEYS[1], 'state') or 'closed') ~= 'open' then return 1 end
if now < num(redis.call('HGET', KEYS[1], 'open_until'), 0) then return 0 end
if now < num(redis.call('HGET', KEYS[1], 'probe_until'), 0) then return 0 end
redis.call('HSET', KEYS[1], 'probe_until', fmt(now + tonumber(ARGV[2])))
return 1
"""
)

# KEYS: cool, rq (zset id -> admitted at), tk (zset 'id:tokens' -> admitted at),
#       rl (hash hwm, tsum), learned (hash rpm, tpm), dcool (the deployment's cooldown; the
#       same key as cool for a deployment with one API key)
# ARGV: now, rpm, tpm, tokens, id, window_s, ttl_ms
# Returns '0' when admitted, else the seconds to wait.
TRY_ACQUIRE = (
    LUA_COMMON
    + """
local now = tonumber(ARGV[1])
local cool = math.max(num(redis.call('GET', KEYS[1]), 0), num(redis.call('GET', KEYS[6]), 0))
if cool > now then return fmt(cool - now) end
local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
local lrpm = tonumber(redis.call('HGET', KEYS[5], 'rpm') or '')
local ltpm = tonumber(redis.call('HGET', KEYS[5], 'tpm') or '')
if lrpm ~= nil and (rpm == nil or lrpm < rpm) then rpm = lrpm end
if ltpm ~= nil and (tpm == nil or ltpm < tpm) then tpm = ltpm end
if rpm == nil and tpm == nil then return '0' end
local tokens, window = tonumber(ARGV[4]), tonumber(ARGV[6])
-- Admission times never go backwards (a caller whose clock lags is treated as "now"), so the
-- window below is exact in the order Redis runs the scripts.
local eff = math.max(now, num(redis.call('HGET', KEYS[4], 'hwm'), 0))
local cut = fmt(eff - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cut)
local tsum = num(redis.call('HGET', KEYS[4], 'tsum'), 0)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', cut)
for _, m in ipairs(gone) do tsum = tsum - tonumber(string.match(m, ':(%d+)$')) end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cut) end
if tsum < 0 then tsum = 0 end
local free_at = nil
if rpm ~= nil then
  local count = redis.call('ZCARD', KEYS[2])
  if count >= rpm then
    local e = redis.call('ZRANGE', KEYS[2], count - rpm, count - rpm, 'WITHSCORES')
    free_at = tonumber(e[2]) + window
  end
end
-- A request larger than the whole token limit waits for an empty window, then goes alone.
if tpm ~= nil and tokens > 0 and tsum > 0 and tsum + tokens > tpm then
  local need, freed, at = tsum + tokens - tpm, 0, nil
  local all = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    freed = freed + tonumber(string.match(all[i], ':(%d+)$'))
    at = tonumber(all[i + 1]) + window
    if freed >= need then break end
  end
  if at ~= nil and (free_at == nil or at > free_at) then free_at = at end
end
if free_at ~= nil then
  redis.call('HSET', KEYS[4], 'tsum', tsum)
  return fmt(math.max(free_at - now, 0.001))
end
redis.call('ZADD', KEYS[2], fmt(eff), ARGV[5])
if tokens > 0 then redis.call('ZADD', KEYS[3], fmt(eff), ARGV[5] .. ':' .. tokens) end
redis.call('HSET', KEYS[4], 'hwm', fmt(eff), 'tsum', tsum + tokens)
for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
return '0'
"""
)

# Returning one admission: only that slot (if still in the window) and that probe lease (not
# a later prober's); idempotent. rq, tk, rl, st: the keys; ticket ('' = none), tokens, probe
# claimed at ('' = none), probe lease seconds: strings as the ARGV carries them.
GIVE_BACK_FN = """
local function give_back(rq, tk, rl, st, ticket, tokens, probe_at, lease_s)
  if ticket ~= '' then
    redis.call('ZREM', rq, ticket)
    local n = tonumber(tokens)
    if n > 0 and redis.call('ZREM', tk, ticket .. ':' .. n) == 1
       and redis.call('EXISTS', rl) == 1 then
      local tsum = num(redis.call('HGET', rl, 'tsum'), 0)
      redis.call('HSET', rl, 'tsum', math.max(tsum - n, 0))
    end
  end
  if probe_at ~= '' and redis.call('HGET', st, 'state') == 'open'
     and redis.call('HGET', st, 'probe_until') == fmt(tonumber(probe_at) + tonumber(lease_s)) then
    redis.call('HSET', st, 'probe_until', 0)
  end
end
"""

# KEYS: rq, tk, rl, st.  ARGV: ticket ('' = none), tokens, probe claimed at ('' = none), lease_s
GIVE_BACK = (
    LUA_COMMON
    + GIVE_BACK_FN
    + """
give_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return 0
"""
)

# The last step before a call (issue 20, item 12): the slot was taken at admission, and a 429
# with Retry-After may have arrived while the quota was being reserved. Atomically: if the
# deployment cools down now, give the admission back and return the seconds left; else keep
# it and return '0'.
# KEYS: cool, rq, tk, rl (the API key's bucket), st, dcool (the deployment's).
# ARGV: now, ticket, tokens, probe claimed at ('' = none), lease_s
CONFIRM = (
    LUA_COMMON
    + GIVE_BACK_FN
    + """
local now = tonumber(ARGV[1])
local cool = math.max(num(redis.call('GET', KEYS[1]), 0), num(redis.call('GET', KEYS[6]), 0))
if cool <= now then return '0' end
give_back(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return fmt(cool - now)
"""
)
