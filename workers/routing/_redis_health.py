"""`RedisHealthStore`: deployment health shared by every worker process through Redis.

Owns: the Lua scripts and key layout described in `workers.routing.health`. Every state change
is one script, so it is atomic across processes and machines. Must not: decide routing or
retries, or keep state in the process. Redis failures surface as `InfraError`; the state itself
is disposable (losing it only forgets cooldowns, circuits and the current rate windows).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import redis

from core.errors import InfraError, LLMProviderError
from schemas.config import RoutingSettings
from workers.providers.base import RateLimitInfo
from workers.routing._health_model import (
    CIRCUIT_WINDOW_S,
    COOLDOWN_GRACE_S,
    EWMA_ALPHA,
    LEARNED_TTL_S,
    OK,
    PROBE_LEASE_S,
    RATE_WINDOW_S,
    RECENT_CALLS,
    STATE_TTL_S,
    DeploymentHealth,
    HealthSnapshot,
    circuit_view,
    failure_effect,
    format_record,
    parse_record,
    rate_limit_effect,
    summarize_calls,
)

# Shared Lua helpers. Numbers go back to Redis as '%.17g' strings: Lua's tostring keeps only 14
# digits, which would round unix timestamps to 0.1 ms and make deadlines drift.
_LUA_COMMON = """
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
_RECORD_SUCCESS = (
    _LUA_COMMON
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
_RECORD_FAILURE = (
    _LUA_COMMON
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
_CLAIM_PROBE = (
    _LUA_COMMON
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
#       rl (hash hwm, tsum), learned (hash rpm, tpm)
# ARGV: now, rpm, tpm, tokens, id, window_s, ttl_ms
# Returns '0' when admitted, else the seconds to wait.
_TRY_ACQUIRE = (
    _LUA_COMMON
    + """
local now = tonumber(ARGV[1])
local cool = num(redis.call('GET', KEYS[1]), 0)
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

# KEYS: rq, tk, rl, st.  ARGV: ticket ('' = none), tokens, probe claimed at ('' = none), lease_s
# Only that slot (if still in the window) and that probe lease (not a later prober's); idempotent.
_GIVE_BACK = (
    _LUA_COMMON
    + """
if ARGV[1] ~= '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  local tokens = tonumber(ARGV[2])
  if tokens > 0 and redis.call('ZREM', KEYS[2], ARGV[1] .. ':' .. tokens) == 1
     and redis.call('EXISTS', KEYS[3]) == 1 then
    local tsum = num(redis.call('HGET', KEYS[3], 'tsum'), 0)
    redis.call('HSET', KEYS[3], 'tsum', math.max(tsum - tokens, 0))
  end
end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[4], 'state') == 'open'
   and redis.call('HGET', KEYS[4], 'probe_until') == fmt(tonumber(ARGV[3]) + tonumber(ARGV[4])) then
  redis.call('HSET', KEYS[4], 'probe_until', 0)
end
return 0
"""
)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _opt(value: float | int | None) -> str:
    return "" if value is None else repr(value)


class RedisHealthStore:
    """Health state in Redis under `prefix`; see `workers.routing.health` for the key layout.

    Args:
        client: a redis-py client (bytes or decoded responses both work).
        prefix: key prefix, so several deployments of llmq can share one Redis.
        rate_window_s: the sliding window of the rpm/tpm limits, seconds (tests shorten it).
    """

    def __init__(
        self, client: redis.Redis, prefix: str = "llmq:h", rate_window_s: float = RATE_WINDOW_S
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.rate_window_s = rate_window_s
        self._success = client.register_script(_RECORD_SUCCESS)
        self._failure = client.register_script(_RECORD_FAILURE)
        self._probe = client.register_script(_CLAIM_PROBE)
        self._acquire = client.register_script(_TRY_ACQUIRE)
        self._give_back = client.register_script(_GIVE_BACK)

    def _key(self, dep_id: str, part: str) -> str:
        # The {hash tag} keeps one deployment's keys in one cluster slot, as scripts need.
        return f"{self.prefix}:{{{dep_id}}}:{part}"

    def snapshot(self, dep_ids: Sequence[str], now: float) -> HealthSnapshot:
        """One round trip for all `dep_ids`; read-only."""
        pipe = self.client.pipeline(transaction=False)
        for dep in dep_ids:
            pipe.get(self._key(dep, "cool"))
            pipe.hmget(self._key(dep, "st"), "state", "open_until", "probe_until", "ok", "lat")
            pipe.llen(self._key(dep, "calls"))
        try:
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise InfraError(f"health snapshot failed: {exc}") from exc
        out: dict[str, DeploymentHealth] = {}
        for i, dep in enumerate(dep_ids):
            cool, (state, open_until, probe_until, ok, lat), calls = replies[3 * i : 3 * i + 3]
            state_s = state.decode() if isinstance(state, bytes) else (state or "closed")
            circuit, until = circuit_view(
                state_s, float(open_until or 0), float(probe_until or 0), now
            )
            out[dep] = DeploymentHealth(
                cooldown_until=float(cool or 0),
                circuit=circuit,
                open_until=until,
                success_rate=float(ok) if ok is not None else None,
                latency_ms=float(lat) if lat is not None else None,
                calls=int(calls),
            )
        return HealthSnapshot(out)

    def record_success(
        self, dep_id: str, latency_ms: float, rate_limits: RateLimitInfo | None, now: float
    ) -> None:
        """A call succeeded: closes a half-open circuit, learns limits from the headers."""
        learned = rate_limit_effect(rate_limits, now)
        keys = [self._key(dep_id, p) for p in ("st", "calls", "cool", "learned")]
        args = [
            repr(now),
            format_record(now, OK, latency_ms, ""),
            repr(float(latency_ms)),
            _opt(learned.cooldown_until),
            _opt(learned.rpm),
            _opt(learned.tpm),
            RECENT_CALLS,
            _ms(STATE_TTL_S),
            COOLDOWN_GRACE_S,
            EWMA_ALPHA,
            _ms(LEARNED_TTL_S),
        ]
        self._run(self._success, keys, args)

    def record_failure(
        self, dep_id: str, error: LLMProviderError, now: float, policy: RoutingSettings
    ) -> None:
        """A call failed: cooldown, counters and the circuit move as `failure_effect` says."""
        effect = failure_effect(error, now, policy)
        keys = [self._key(dep_id, p) for p in ("st", "calls", "cool")]
        args = [
            repr(now),
            format_record(now, effect.code, None, effect.kind),
            effect.code,
            int(effect.open_now),
            _opt(effect.cooldown_until),
            policy.circuit_failures,
            policy.circuit_failure_rate,
            policy.circuit_min_calls,
            policy.circuit_open_s,
            CIRCUIT_WINDOW_S,
            RECENT_CALLS,
            _ms(STATE_TTL_S),
            COOLDOWN_GRACE_S,
            EWMA_ALPHA,
        ]
        self._run(self._failure, keys, args)

    def try_acquire(
        self,
        dep_id: str,
        rpm: int | None,
        tpm: int | None,
        tokens: int,
        now: float,
        ticket: str | None = None,
    ) -> float:
        """Take one request and `tokens` from the deployment's windows, or say how long to wait.

        Returns 0.0 when admitted (the slot is taken), else seconds until a slot frees up
        (a cooldown counts too). Learned limits apply when lower than `rpm`/`tpm`. `ticket`
        names the slot so `give_back` can return it (None = a fresh id nobody can return).
        """
        keys = [self._key(dep_id, p) for p in ("cool", "rq", "tk", "rl", "learned")]
        args = [
            repr(now),
            _opt(rpm),
            _opt(tpm),
            max(int(tokens), 0),
            ticket or uuid.uuid4().hex,
            repr(float(self.rate_window_s)),
            _ms(self.rate_window_s + COOLDOWN_GRACE_S),
        ]
        return float(self._run(self._acquire, keys, args))

    def claim_probe(self, dep_id: str, now: float) -> bool:
        """True for exactly one caller per half-open period (and always for a closed circuit)."""
        return bool(self._run(self._probe, [self._key(dep_id, "st")], [repr(now), PROBE_LEASE_S]))

    def give_back(
        self, dep_id: str, ticket: str | None, tokens: int, probe_claimed_at: float | None
    ) -> None:
        """Undo an unused admission in one script: free `ticket`'s slot, end the probe lease."""
        keys = [self._key(dep_id, p) for p in ("rq", "tk", "rl", "st")]
        args = [ticket or "", max(int(tokens), 0), _opt(probe_claimed_at), PROBE_LEASE_S]
        self._run(self._give_back, keys, args)

    def stats(self, dep_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Recent-call figures per deployment (see `summarize_calls`) plus learned limits."""
        pipe = self.client.pipeline(transaction=False)
        for dep in dep_ids:
            pipe.lrange(self._key(dep, "calls"), 0, -1)
            pipe.hmget(self._key(dep, "learned"), "rpm", "tpm")
        try:
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise InfraError(f"health stats failed: {exc}") from exc
        out: dict[str, dict[str, Any]] = {}
        for i, dep in enumerate(dep_ids):
            records, (rpm, tpm) = replies[2 * i], replies[2 * i + 1]
            summary = summarize_calls(parse_record(r) for r in records)
            summary["learned_rpm"] = int(rpm) if rpm is not None else None
            summary["learned_tpm"] = int(tpm) if tpm is not None else None
            out[dep] = summary
        return out

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise InfraError(f"health store script failed: {exc}") from exc
