"""`MemoryHealthStore`: the same health state machine as the Redis store, inside one process.

Owns: in-process, thread-safe health state for the embedded mode and unit tests. Must not:
diverge from `RedisHealthStore`'s behaviour (the same behavioural tests run against both), or
be used by several worker processes at once (each process would pace on its own).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import LLMProviderError
from schemas.config import RoutingSettings
from workers.providers.base import RateLimitInfo
from workers.routing._health_model import (
    CIRCUIT_WINDOW_S,
    EWMA_ALPHA,
    FAIL,
    LEARNED_TTL_S,
    OK,
    PROBE_LEASE_S,
    RATE_WINDOW_S,
    RECENT_CALLS,
    THROTTLED,
    AcquireCall,
    ConfirmCall,
    DeploymentHealth,
    HealthSnapshot,
    SuccessCall,
    circuit_view,
    effective_limit,
    failure_effect,
    rate_limit_effect,
    split_bucket,
    summarize_calls,
)


def _ewma(old: float | None, x: float) -> float:
    return x if old is None else old * (1 - EWMA_ALPHA) + x * EWMA_ALPHA


@dataclass
class _Dep:
    """One deployment's state; the fields mirror the Redis keys."""

    cooldown_until: float = 0.0
    state: str = "closed"
    open_until: float = 0.0
    probe_until: float = 0.0
    consec: int = 0
    closed_at: float = 0.0
    ok: float | None = None
    lat: float | None = None
    calls: deque[tuple[float, int, float | None, str]] = field(
        default_factory=lambda: deque(maxlen=RECENT_CALLS)
    )
    admitted: deque[tuple[float, int, str | None]] = field(
        default_factory=deque
    )  # at, tokens, ticket
    tsum: int = 0
    hwm: float = 0.0
    learned_rpm: int | None = None
    learned_tpm: int | None = None
    learned_until: float = 0.0

    def cool_to(self, until: float | None, now: float) -> None:
        """The later deadline wins; one already past changes nothing."""
        if until is not None and until > now and until > self.cooldown_until:
            self.cooldown_until = until


class MemoryHealthStore:
    """Thread-safe, in-process `HealthStore`. State grows with the number of deployments only."""

    def __init__(self, rate_window_s: float = RATE_WINDOW_S) -> None:
        self.rate_window_s = rate_window_s
        self._lock = threading.Lock()
        self._deps: dict[str, _Dep] = {}

    def _dep(self, dep_id: str) -> _Dep:
        return self._deps.setdefault(dep_id, _Dep())

    def snapshot(self, dep_ids: Sequence[str], now: float) -> HealthSnapshot:
        out: dict[str, DeploymentHealth] = {}
        with self._lock:
            for dep_id in dep_ids:
                d = self._deps.get(dep_id)
                if d is None:
                    continue
                circuit, until = circuit_view(d.state, d.open_until, d.probe_until, now)
                out[dep_id] = DeploymentHealth(
                    d.cooldown_until, circuit, until, d.ok, d.lat, len(d.calls)
                )
        return HealthSnapshot(out)

    def record_success(
        self, dep_id: str, latency_ms: float, rate_limits: RateLimitInfo | None, now: float
    ) -> None:
        learned = rate_limit_effect(rate_limits, now)
        dep_id, bucket = split_bucket(dep_id)[0], dep_id
        with self._lock:
            b = self._dep(bucket)  # the key's bucket (the deployment itself with one key)
            d = self._dep(dep_id)
            d.calls.appendleft((now, OK, float(latency_ms), ""))
            d.ok, d.lat = _ewma(d.ok, 1.0), _ewma(d.lat, float(latency_ms))
            if d.state == "open" and now >= d.open_until:
                # the half-open probe succeeded: close, and judge the failure rate afresh
                d.state, d.consec, d.closed_at, d.open_until, d.probe_until = "closed", 0, now, 0, 0
            elif d.state != "open":
                d.consec = 0
            b.cool_to(learned.cooldown_until, now)
            if learned.rpm or learned.tpm:
                b.learned_rpm = learned.rpm or b.learned_rpm
                b.learned_tpm = learned.tpm or b.learned_tpm
                b.learned_until = now + LEARNED_TTL_S

    def record_failure(
        self, dep_id: str, error: LLMProviderError, now: float, policy: RoutingSettings
    ) -> None:
        effect = failure_effect(error, now, policy)
        dep_id, bucket = split_bucket(dep_id)[0], dep_id
        with self._lock:
            d = self._dep(dep_id)
            # a 429 cools the key that got it; any other cooldown the whole deployment
            cooling = self._dep(bucket) if effect.code == THROTTLED else d
            cooling.cool_to(effect.cooldown_until, now)
            d.calls.appendleft((now, effect.code, None, effect.kind))
            if effect.code != FAIL:
                return  # the request's fault, or throttling: no health verdict
            d.ok = _ewma(d.ok, 0.0)
            d.consec += 1
            target = self._open_target(d, effect.open_now, now, policy)
            if target is not None:
                d.state, d.open_until, d.probe_until = "open", target, 0.0

    @staticmethod
    def _open_target(d: _Dep, open_now: bool, now: float, policy: RoutingSettings) -> float | None:
        """Where the circuit's deadline moves after a failure; None = stays as it is."""
        if open_now:
            return max(d.open_until, now + policy.circuit_open_s)
        if d.state == "open":
            return now + policy.circuit_open_s if now >= d.open_until else None
        if d.consec >= policy.circuit_failures:
            return now + policy.circuit_open_s
        since = max(now - CIRCUIT_WINDOW_S, d.closed_at)
        judged = [code for t, code, _, _ in d.calls if t >= since and code in (OK, FAIL)]
        fails = judged.count(FAIL)
        if len(judged) >= policy.circuit_min_calls and fails / len(judged) >= (
            policy.circuit_failure_rate
        ):
            return now + policy.circuit_open_s
        return None

    def try_acquire(
        self,
        dep_id: str,
        rpm: int | None,
        tpm: int | None,
        tokens: int,
        now: float,
        ticket: str | None = None,
    ) -> float:
        tokens = max(int(tokens), 0)
        with self._lock:
            d = self._dep(dep_id)  # a bucket id: the key's windows and 429 cooldown
            cool = max(d.cooldown_until, self._dep(split_bucket(dep_id)[0]).cooldown_until)
            if cool > now:
                return cool - now
            learned_ok = d.learned_until > now
            rpm = effective_limit(rpm, d.learned_rpm if learned_ok else None)
            tpm = effective_limit(tpm, d.learned_tpm if learned_ok else None)
            if rpm is None and tpm is None:
                return 0.0
            eff = max(now, d.hwm)
            while d.admitted and d.admitted[0][0] <= eff - self.rate_window_s:
                d.tsum -= d.admitted.popleft()[1]
            free_at = self._free_at(d, rpm, tpm, tokens)
            if free_at is not None:
                return max(free_at - now, 0.001)
            d.admitted.append((eff, tokens, ticket))
            d.tsum += tokens
            d.hwm = eff
            return 0.0

    def _free_at(self, d: _Dep, rpm: int | None, tpm: int | None, tokens: int) -> float | None:
        """When the windows will have room for one more request of `tokens`; None = now."""
        free_at: float | None = None
        if rpm is not None and len(d.admitted) >= rpm:
            free_at = d.admitted[len(d.admitted) - rpm][0] + self.rate_window_s
        if tpm is not None and tokens > 0 and d.tsum > 0 and d.tsum + tokens > tpm:
            need, freed, at = d.tsum + tokens - tpm, 0, None
            for t, n, _ticket in d.admitted:  # requests without tokens occupy no token budget
                if n == 0:
                    continue
                freed += n
                at = t + self.rate_window_s
                if freed >= need:
                    break
            if at is not None and (free_at is None or at > free_at):
                free_at = at
        return free_at

    def claim_probe(self, dep_id: str, now: float) -> bool:
        with self._lock:
            d = self._dep(dep_id)
            if d.state != "open":
                return True
            if now < d.open_until or now < d.probe_until:
                return False
            d.probe_until = now + PROBE_LEASE_S
            return True

    def give_back(
        self, dep_id: str, ticket: str | None, tokens: int, probe_claimed_at: float | None
    ) -> None:
        """Undo an admission whose call will not be made: free the rate slot taken with
        `ticket` (if it is still in the window) and end the probe lease claimed at
        `probe_claimed_at` (if it is still that lease)."""
        with self._lock:
            self._give_back(dep_id, ticket, probe_claimed_at)

    def confirm(
        self,
        dep_id: str,
        ticket: str | None,
        tokens: int,
        probe_claimed_at: float | None,
        now: float,
    ) -> float:
        """Right before the call: 0.0 keeps the admission; if the deployment cools down now,
        the admission is given back under the same lock and the seconds left are returned."""
        with self._lock:
            b, d = self._deps.get(dep_id), self._deps.get(split_bucket(dep_id)[0])
            cool = max(b.cooldown_until if b else 0.0, d.cooldown_until if d else 0.0)
            if cool <= now:
                return 0.0
            self._give_back(dep_id, ticket, probe_claimed_at)
            return cool - now

    def _give_back(self, bucket: str, ticket: str | None, probe_claimed_at: float | None) -> None:
        """`ticket`'s slot in `bucket`'s window; the probe lease of its deployment."""
        b, d = self._deps.get(bucket), self._deps.get(split_bucket(bucket)[0])
        if ticket is not None and b is not None:
            for entry in b.admitted:
                if entry[2] == ticket:
                    b.admitted.remove(entry)
                    b.tsum = max(b.tsum - entry[1], 0)
                    break
        if probe_claimed_at is not None and d is not None and d.state == "open":
            if d.probe_until == probe_claimed_at + PROBE_LEASE_S:
                d.probe_until = 0.0

    def stats(self, dep_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for dep_id in dep_ids:
                d = self._deps.get(dep_id) or _Dep()
                summary = summarize_calls(list(d.calls))
                summary["learned_rpm"] = d.learned_rpm
                summary["learned_tpm"] = d.learned_tpm
                out[dep_id] = summary
        return out

    # ---- batches: one lock per operation, in order, as the single forms -------------------

    def try_acquire_many(self, calls: Sequence[AcquireCall]) -> list[float]:
        return [self.try_acquire(*c) for c in calls]

    def confirm_many(self, calls: Sequence[ConfirmCall]) -> list[float]:
        return [self.confirm(*c) for c in calls]

    def record_success_many(self, calls: Sequence[SuccessCall]) -> None:
        for c in calls:
            self.record_success(*c)
