"""Deployment health shared by every worker: cooldowns, circuit breakers, rate-limit windows and
a small rolling record of latency and success.

Owns: the public face of the health stores (`HealthStore`, `RedisHealthStore`,
`MemoryHealthStore`, `DeploymentHealth`, `HealthSnapshot`). Must not: rank deployments or decide
retries (`select` and `retry` do, from a snapshot), or hold anything that matters beyond
availability: losing the state only forgets cooldowns, circuits and current windows.

Behaviour (identical in both stores; the same tests run against each):
- Cooldown: RateLimited and ProviderUnavailable cool a deployment down until now + Retry-After
  (else `default_cooldown_s`); a reply whose rate-limit headers show a window exhausted
  (remaining 0 with a reset) cools it down until the reset. The later deadline always wins.
- Circuit: opens after `circuit_failures` consecutive failures, or when at least
  `circuit_min_calls` calls in the last CIRCUIT_WINDOW_S (and since the circuit last closed)
  failed at `circuit_failure_rate` or more. AuthFailed, ModelUnavailable and InsufficientCredit
  open it at once. After `circuit_open_s` it is half-open: `claim_probe` admits one caller
  (a lease of PROBE_LEASE_S, so a prober that dies does not wedge it), a success closes it, a
  failure re-opens it. Throttling and request-side rejections (bad request, content filter,
  context too long) say nothing about health and are only counted in stats.
- Pacing: `try_acquire` checks the cooldown, then the requests and tokens admitted in the last
  `rate_window_s` (default 61 s: a minute plus a second of slack for the gap between admission
  and arrival at the provider), and takes a slot only if both have room. The limit is the lower
  of the configured rpm/tpm and the one learned from the last reply's headers (kept an hour).
- Giving back: an admission whose call will not be made (quota refused, claim superseded)
  calls `give_back` with the slot's ticket and the probe's claim time: the request and its
  tokens leave the windows and the probe lease ends, in one atomic step. Only that slot and
  that lease: one already aged out, or a later prober's lease, is left alone.
- Buckets (keys with rotation): the rate methods (`try_acquire`, `give_back`, `confirm`) and
  the recording methods take a bucket id. For a deployment with several API keys that is
  `D#F` (F: the key's fingerprint, 8 hex of its sha256): the key's own windows, learned
  limits and 429 cooldown. The circuit, call records, probe lease and every other cooldown
  (5xx, Retry-After on ProviderUnavailable) stay the deployment's, and `try_acquire`/`confirm`
  honour both cooldowns. A deployment with one key uses D itself, so nothing changes for it.

Clock: every method takes `now` (unix seconds) from the caller, and the scripts never read
Redis TIME. Decisions are pure functions of data plus `now`, tests drive a synthetic clock, and
snapshots compare deadlines with the same clock that wrote them. To keep the rate window exact
when callers' clocks differ slightly or their scripts arrive out of order, admission times
never go backwards: a caller whose `now` is behind the latest admission is admitted "at" that
admission's time. Worker clocks must therefore be NTP-synchronised (skew only shifts deadlines
by the skew). Key TTLs are relative, so Redis's own clock only governs garbage collection.

Redis keys, for deployment id D under `prefix` (default "llmq:h"); `{D}` is a cluster hash tag:
    {prefix}:{D}:cool     string  cooldown deadline; TTL = deadline - now + 60 s
    {prefix}:{D}:st       hash    state, open_until, probe_until, consec, closed_at, ok, lat
                                  (circuit + moving averages); TTL 7 days, refreshed on write
    {prefix}:{D}:calls    list    last 200 call records 't|code|latency_ms|kind'; TTL 7 days
    {prefix}:{D}:rq       zset    admitted request ids scored by admission time
    {prefix}:{D}:tk       zset    'id:tokens' scored by admission time
    {prefix}:{D}:rl       hash    hwm (latest admission time), tsum (tokens in the window)
                                  (rq, tk, rl: TTL = window + 60 s, refreshed on admission)
    {prefix}:{D}:learned  hash    rpm, tpm learned from rate-limit headers; TTL 1 hour
    {prefix}:{D}:F:cool|rq|tk|rl|learned   the same, for key F's bucket `D#F`
"""

from __future__ import annotations

from workers.routing._health_model import (
    HEALTHY,
    AcquireCall,
    ConfirmCall,
    DeploymentHealth,
    HealthSnapshot,
    HealthStore,
    SuccessCall,
    failure_effect,
    rate_limit_effect,
)
from workers.routing._memory_health import MemoryHealthStore
from workers.routing._redis_health import RedisHealthStore

__all__ = [
    "HEALTHY",
    "AcquireCall",
    "ConfirmCall",
    "DeploymentHealth",
    "HealthSnapshot",
    "HealthStore",
    "MemoryHealthStore",
    "RedisHealthStore",
    "SuccessCall",
    "failure_effect",
    "rate_limit_effect",
]
