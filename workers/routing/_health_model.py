"""The values and rules both health stores share: what a snapshot says, and what a reply or an
error does to a deployment's health.

Owns: `DeploymentHealth`, `HealthSnapshot`, the `HealthStore` protocol, the tuning constants and
the pure translations `failure_effect` / `rate_limit_effect` / `summarize_calls`. Must not: do
I/O. The Redis (Lua) and in-memory stores implement the same state machine from these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from core.errors import (
    AuthFailed,
    InsufficientCredit,
    LLMProviderError,
    ModelUnavailable,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
)
from schemas.config import RoutingSettings
from workers.providers.base import RateLimitInfo

Circuit = Literal["closed", "open", "half_open"]

RECENT_CALLS = 200  # per-deployment call records kept for stats and the failure-rate rule
CIRCUIT_WINDOW_S = 60.0  # the failure-rate rule looks at calls this recent (and since closing)
PROBE_LEASE_S = 120.0  # a half-open probe slot is held this long (about one call timeout)
EWMA_ALPHA = 0.2  # weight of the newest call in the latency/success averages used for ordering
RATE_WINDOW_S = 61.0  # "per minute" plus 1 s for the gap between admission and arrival
STATE_TTL_S = 7 * 86400.0  # circuit state and call records vanish after a week of silence
LEARNED_TTL_S = 3600.0  # limits learned from headers are trusted for an hour
COOLDOWN_GRACE_S = 60.0  # a cooldown key outlives its deadline by this much

# Outcome codes in call records. Only OK and FAIL say anything about the deployment's health:
# a rejected request is the request's fault, and throttling is handled by cooldowns.
OK, FAIL, REJECTED, THROTTLED = 1, 0, 2, 3

# Account- or deployment-wide rejections: every call would fail the same way, so stop at once.
_OPENS_AT_ONCE = (AuthFailed, ModelUnavailable, InsufficientCredit)


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    """One deployment's health as of a snapshot. Times are unix seconds, 0 = none."""

    cooldown_until: float = 0.0
    circuit: Circuit = "closed"
    open_until: float = 0.0
    success_rate: float | None = None  # moving average over recent calls; None = no calls yet
    latency_ms: float | None = None  # moving average of successful calls
    calls: int = 0  # recent calls on record (at most RECENT_CALLS)


HEALTHY = DeploymentHealth()


def bucket_id(dep_id: str, key_fp: str | None) -> str:
    """The rate-limit bucket of one key of a deployment: `dep#fingerprint` (never the key);
    the deployment id itself for a deployment with one key."""
    return f"{dep_id}#{key_fp}" if key_fp else dep_id


def split_bucket(bucket: str) -> tuple[str, str | None]:
    """(deployment id, key fingerprint or None) of a bucket id (`bucket_id`'s inverse)."""
    dep_id, sep, fp = bucket.rpartition("#")
    if sep and len(fp) == 8 and all(c in "0123456789abcdef" for c in fp):
        return dep_id, fp
    return bucket, None


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Health of several deployments at one `now`; unknown ids are healthy."""

    by_deployment: Mapping[str, DeploymentHealth] = field(default_factory=dict)

    def get(self, dep_id: str) -> DeploymentHealth:
        return self.by_deployment.get(dep_id, HEALTHY)


class AcquireCall(NamedTuple):
    """One `try_acquire` of a batch (issue 21: a chunk's admissions in one round trip)."""

    dep_id: str
    rpm: int | None
    tpm: int | None
    tokens: int
    now: float
    ticket: str


class ConfirmCall(NamedTuple):
    """One `confirm` of a batch."""

    dep_id: str
    ticket: str | None
    tokens: int
    probe_claimed_at: float | None
    now: float


class SuccessCall(NamedTuple):
    """One `record_success` of a batch."""

    dep_id: str
    latency_ms: float
    rate_limits: RateLimitInfo | None
    now: float


class HealthStore(Protocol):
    """Shared availability state. `now` is unix seconds from the caller's clock."""

    def snapshot(self, dep_ids: Sequence[str], now: float) -> HealthSnapshot: ...

    def record_success(
        self, dep_id: str, latency_ms: float, rate_limits: RateLimitInfo | None, now: float
    ) -> None: ...

    def record_failure(
        self, dep_id: str, error: LLMProviderError, now: float, policy: RoutingSettings
    ) -> None: ...

    def try_acquire(
        self,
        dep_id: str,
        rpm: int | None,
        tpm: int | None,
        tokens: int,
        now: float,
        ticket: str | None = None,
    ) -> float: ...

    def claim_probe(self, dep_id: str, now: float) -> bool: ...

    def give_back(
        self, dep_id: str, ticket: str | None, tokens: int, probe_claimed_at: float | None
    ) -> None: ...

    def confirm(
        self,
        dep_id: str,
        ticket: str | None,
        tokens: int,
        probe_claimed_at: float | None,
        now: float,
    ) -> float: ...

    def stats(self, dep_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    # Batches (issue 21): the same operations, in order, each as atomic as its single form.
    def try_acquire_many(self, calls: Sequence[AcquireCall]) -> list[float]: ...

    def confirm_many(self, calls: Sequence[ConfirmCall]) -> list[float]: ...

    def record_success_many(self, calls: Sequence[SuccessCall]) -> None: ...


@dataclass(frozen=True, slots=True)
class FailureEffect:
    code: int  # FAIL, REJECTED or THROTTLED
    kind: str  # the error's ErrorKind value
    open_now: bool  # open the circuit without waiting for the counters
    cooldown_until: float | None  # unix seconds, None = no cooldown


def failure_effect(error: LLMProviderError, now: float, policy: RoutingSettings) -> FailureEffect:
    """What one failed call does to its deployment, decided by the error's class.

    RateLimited and ProviderUnavailable (any 5xx, 529, connection refused) cool the deployment
    down for Retry-After, else `policy.default_cooldown_s`: `retry.decide` falls back to another
    deployment *without* excluding this one, trusting the router to skip it while it cools.
    Any other error that carries Retry-After also honours it.
    """
    kind = str(error.kind)
    retry_after = error.retry_after
    wait = max(retry_after, 0.0) if retry_after is not None else None
    if isinstance(error, RateLimited | ProviderUnavailable) and wait is None:
        wait = policy.default_cooldown_s
    cooldown = now + wait if wait is not None else None
    if isinstance(error, RateLimited):
        return FailureEffect(THROTTLED, kind, False, cooldown)
    if isinstance(error, RequestRejected):
        return FailureEffect(REJECTED, kind, False, cooldown)
    return FailureEffect(FAIL, kind, isinstance(error, _OPENS_AT_ONCE), cooldown)


@dataclass(frozen=True, slots=True)
class RateLimitEffect:
    cooldown_until: float | None  # a window reported exhausted: wait for its reset
    rpm: int | None  # learned request limit per minute
    tpm: int | None  # learned token limit per minute


def rate_limit_effect(info: RateLimitInfo | None, now: float) -> RateLimitEffect:
    """Learned limits and exhaustion from a reply's rate-limit headers."""
    if info is None:
        return RateLimitEffect(None, None, None)
    resets = [
        reset
        for remaining, reset in (
            (info.remaining_requests, info.reset_requests_s),
            (info.remaining_tokens, info.reset_tokens_s),
        )
        if remaining is not None and remaining <= 0 and reset is not None
    ]
    cooldown = now + max(resets) if resets else None
    rpm = info.limit_requests if info.limit_requests and info.limit_requests > 0 else None
    tpm = info.limit_tokens if info.limit_tokens and info.limit_tokens > 0 else None
    return RateLimitEffect(cooldown, rpm, tpm)


def circuit_view(
    state: str, open_until: float, probe_until: float, now: float
) -> tuple[Circuit, float]:
    """How a stored circuit looks at `now`. Past its deadline an open circuit is half-open,
    unless a probe is in flight: then it reads as open until the probe's lease ends, so the
    router skips it and only the prober goes there."""
    if state != "open":
        return "closed", 0.0
    if now < open_until:
        return "open", open_until
    if now < probe_until:
        return "open", probe_until
    return "half_open", open_until


def _percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(len(sorted_values) * q / 100))
    return sorted_values[rank - 1]


def summarize_calls(records: Iterable[tuple[float, int, float | None, str]]) -> dict[str, Any]:
    """Counts, success rate and latency percentiles of call records (t, code, latency, kind)."""
    counts = {OK: 0, FAIL: 0, REJECTED: 0, THROTTLED: 0}
    latencies: list[float] = []
    by_kind: dict[str, int] = {}
    for _t, code, latency, kind in records:
        counts[code] = counts.get(code, 0) + 1
        if code == OK and latency is not None:
            latencies.append(latency)
        elif code != OK and kind:
            by_kind[kind] = by_kind.get(kind, 0) + 1
    judged = counts[OK] + counts[FAIL]
    latencies.sort()
    return {
        "calls": sum(counts.values()),
        "successes": counts[OK],
        "failures": counts[FAIL],
        "rejected": counts[REJECTED],
        "throttled": counts[THROTTLED],
        "success_rate": counts[OK] / judged if judged else None,
        "p50_latency_ms": _percentile(latencies, 50),
        "p95_latency_ms": _percentile(latencies, 95),
        "errors_by_kind": by_kind,
    }


def parse_record(raw: str | bytes) -> tuple[float, int, float | None, str]:
    """A call record as stored: 't|code|latency_ms|kind' (latency empty on failures)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    t, code, latency, kind = text.split("|", 3)
    return float(t), int(code), float(latency) if latency else None, kind


def format_record(now: float, code: int, latency_ms: float | None, kind: str) -> str:
    lat = repr(float(latency_ms)) if latency_ms is not None else ""
    return f"{now!r}|{code}|{lat}|{kind}"


def effective_limit(configured: int | None, learned: int | None) -> int | None:
    """The lower of the configured and the learned limit; None when neither is known."""
    known = [v for v in (configured, learned) if v]
    return min(known) if known else None
