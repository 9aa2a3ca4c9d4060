"""`RedisHealthStore`: deployment health shared by every worker process through Redis.

Owns: the key layout described in `workers.routing.health` and running the Lua scripts of
`workers.routing._health_lua`. Every state change
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
from workers.routing._health_lua import (
    CLAIM_PROBE,
    CONFIRM,
    GIVE_BACK,
    RECORD_FAILURE,
    RECORD_SUCCESS,
    TRY_ACQUIRE,
)
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
    THROTTLED,
    AcquireCall,
    ConfirmCall,
    DeploymentHealth,
    HealthSnapshot,
    SuccessCall,
    circuit_view,
    failure_effect,
    format_record,
    parse_record,
    rate_limit_effect,
    split_bucket,
    summarize_calls,
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
        self._success = client.register_script(RECORD_SUCCESS)
        self._failure = client.register_script(RECORD_FAILURE)
        self._probe = client.register_script(CLAIM_PROBE)
        self._acquire = client.register_script(TRY_ACQUIRE)
        self._give_back = client.register_script(GIVE_BACK)
        self._confirm = client.register_script(CONFIRM)

    def _key(self, dep_id: str, part: str) -> str:
        """A key of a deployment or of one API key's bucket (`dep#fingerprint`): the {hash tag}
        is the deployment id either way, so one script's keys share a cluster slot."""
        dep, fp = split_bucket(dep_id)
        return f"{self.prefix}:{{{dep}}}:{fp}:{part}" if fp else f"{self.prefix}:{{{dep}}}:{part}"

    def _dep_key(self, bucket: str, part: str) -> str:
        """The deployment-wide key of `part` for a bucket id (circuit, calls, 5xx cooldown)."""
        return self._key(split_bucket(bucket)[0], part)

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
        self._run(self._success, *self._success_call(dep_id, latency_ms, rate_limits, now))

    def _success_call(
        self, dep_id: str, latency_ms: float, rate_limits: RateLimitInfo | None, now: float
    ) -> tuple[list[str], list[Any]]:
        learned = rate_limit_effect(rate_limits, now)
        keys = [self._dep_key(dep_id, "st"), self._dep_key(dep_id, "calls")]
        keys += [self._key(dep_id, "cool"), self._key(dep_id, "learned")]  # the key's bucket
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
        return keys, args

    def record_failure(
        self, dep_id: str, error: LLMProviderError, now: float, policy: RoutingSettings
    ) -> None:
        """A call failed: cooldown, counters and the circuit move as `failure_effect` says."""
        effect = failure_effect(error, now, policy)
        # a 429 cools the key that got it; any other cooldown the whole deployment
        cool = self._key(dep_id, "cool") if effect.code == THROTTLED else None
        keys = [self._dep_key(dep_id, p) for p in ("st", "calls", "cool")]
        keys[2] = cool or keys[2]
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
        return float(
            self._run(self._acquire, *self._acquire_call(dep_id, rpm, tpm, tokens, now, ticket))
        )

    def _acquire_call(  # noqa: PLR0913 - try_acquire's arguments
        self,
        dep_id: str,
        rpm: int | None,
        tpm: int | None,
        tokens: int,
        now: float,
        ticket: str | None,
    ) -> tuple[list[str], list[Any]]:
        keys = [self._key(dep_id, p) for p in ("cool", "rq", "tk", "rl", "learned")]
        keys.append(self._dep_key(dep_id, "cool"))
        args = [
            repr(now),
            _opt(rpm),
            _opt(tpm),
            max(int(tokens), 0),
            ticket or uuid.uuid4().hex,
            repr(float(self.rate_window_s)),
            _ms(self.rate_window_s + COOLDOWN_GRACE_S),
        ]
        return keys, args

    def claim_probe(self, dep_id: str, now: float) -> bool:
        """True for exactly one caller per half-open period (and always for a closed circuit)."""
        return bool(self._run(self._probe, [self._key(dep_id, "st")], [repr(now), PROBE_LEASE_S]))

    def give_back(
        self, dep_id: str, ticket: str | None, tokens: int, probe_claimed_at: float | None
    ) -> None:
        """Undo an unused admission in one script: free `ticket`'s slot, end the probe lease."""
        keys = [self._key(dep_id, p) for p in ("rq", "tk", "rl")] + [self._dep_key(dep_id, "st")]
        args = [ticket or "", max(int(tokens), 0), _opt(probe_claimed_at), PROBE_LEASE_S]
        self._run(self._give_back, keys, args)

    def confirm(
        self,
        dep_id: str,
        ticket: str | None,
        tokens: int,
        probe_claimed_at: float | None,
        now: float,
    ) -> float:
        """Right before the call: keep the admission unless the deployment cools down now.

        0.0 = the call may go. Otherwise the admission (`ticket`'s slot, the probe lease) was
        given back, in the same script that read the cooldown, and the seconds left are
        returned. One atomic step, so no request leaves inside a Retry-After window that was
        stored before it.
        """
        return float(
            self._run(
                self._confirm, *self._confirm_call(dep_id, ticket, tokens, probe_claimed_at, now)
            )
        )

    def _confirm_call(
        self,
        dep_id: str,
        ticket: str | None,
        tokens: int,
        probe_claimed_at: float | None,
        now: float,
    ) -> tuple[list[str], list[Any]]:
        keys = [self._key(dep_id, p) for p in ("cool", "rq", "tk", "rl")]
        keys += [self._dep_key(dep_id, "st"), self._dep_key(dep_id, "cool")]
        args = [repr(now), ticket or "", max(int(tokens), 0), _opt(probe_claimed_at)]
        return keys, [*args, PROBE_LEASE_S]

    # ---- batches (issue 21): one pipelined round trip, each script as atomic as alone -----

    def try_acquire_many(self, calls: Sequence[AcquireCall]) -> list[float]:
        built = [(self._acquire, *self._acquire_call(*c)) for c in calls]
        return [float(r) for r in self._run_many(built)]

    def confirm_many(self, calls: Sequence[ConfirmCall]) -> list[float]:
        built = [(self._confirm, *self._confirm_call(*c)) for c in calls]
        return [float(r) for r in self._run_many(built)]

    def record_success_many(self, calls: Sequence[SuccessCall]) -> None:
        self._run_many([(self._success, *self._success_call(*c)) for c in calls])

    def _run_many(self, built: Sequence[tuple[Any, list[str], list[Any]]]) -> list[Any]:
        if not built:
            return []
        pipe = self.client.pipeline(transaction=False)
        for script, keys, args in built:
            script(keys=keys, args=args, client=pipe)
        try:
            return list(pipe.execute())
        except redis.RedisError as exc:
            raise InfraError(f"health store scripts failed: {exc}") from exc

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

    def window_use(self, dep_ids: Sequence[str], now: float) -> dict[str, tuple[int, int]]:
        """(requests, tokens) admitted in the rate window ending at `now`, per bucket id;
        read-only (the dashboard's rate-limit headroom; admission keeps its own count)."""
        since = now - self.rate_window_s
        pipe = self.client.pipeline(transaction=False)
        for dep in dep_ids:
            pipe.zcount(self._key(dep, "rq"), f"({since!r}", "+inf")
            pipe.zrangebyscore(self._key(dep, "tk"), f"({since!r}", "+inf")
        try:
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise InfraError(f"health window read failed: {exc}") from exc
        out: dict[str, tuple[int, int]] = {}
        for i, dep in enumerate(dep_ids):
            members = replies[2 * i + 1]
            tokens = sum(
                int((m.decode() if isinstance(m, bytes) else m).rpartition(":")[2] or 0)
                for m in members
            )
            out[dep] = (int(replies[2 * i]), tokens)
        return out

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise InfraError(f"health store script failed: {exc}") from exc
