"""The direct call: the queue's routing-and-retry policy, run in the caller's thread.

Owns: `call_direct`, the loop behind `LLMProviderManager.call_model`, and its result values
(`Answered`, `GaveUp`). Each round is what one queued run of a job is (workers/pipeline.py):

    snapshot the health store -> `rank_candidates` (the model's own deployments, then its
    configured fallback models only, minus those that cannot honour the request's features:
    `routing.capability.can_serve`) -> the first candidate with a slot (`routing.slots`) ->
    one provider call -> record it in the health store -> check the output (`workers/output.py`:
    JSON and tool calls as asked, else `InvalidOutput`) -> `retry.decide` says what next

`fallback` goes straight to the next round (the failed deployment is excluded, or skipped
while it cools down, exactly as for a queued job); where the queue would requeue the job with
a countdown (`retry_later`, every candidate waiting, everything cooling down) this sleeps
instead, bounded: at most `max_waits` sleeps per call, none longer than `max_wait_s`. Past a
bound it gives up rather than block the caller. The attempt budget is `routing.max_attempts`,
as for a job.

Must not: write the ledger, enqueue, build adapters (the caller passes `call`), or make any
decision itself: ranking, retrying and health are the pure functions and stores above.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InvalidOutput, LLMProviderError
from schemas.config import LLMConfig
from schemas.request import NO_FEATURES, Features, required_features
from workers import retry
from workers.output import Valid, check_output
from workers.providers.base import ProviderReply, ProviderRequest
from workers.providers.keys import KeyPool
from workers.routing.capability import incapable_ids
from workers.routing.health import HealthSnapshot, HealthStore
from workers.routing.select import (
    Candidate,
    RouteRequest,
    rank_candidates,
    route_deployment_ids,
)
from workers.routing.slots import MIN_WAIT_S, Hold, next_wake, take_slot

if TYPE_CHECKING:
    from workers.pricing import Price

# (candidate, request, fingerprint of the API key to use or None) -> reply
Call = Callable[[Candidate, ProviderRequest, str | None], ProviderReply]


@dataclass(frozen=True, slots=True)
class DirectDeps:
    """What a direct call reads and uses; the caller owns all of it.

    `prices` and `has_key` are keyed by deployment id, like the worker runtime's. `call` sends
    one request to one candidate with the API key admission chose (raising
    `LLMProviderError` on failure). `keys` gives a deployment's key pool (None: one key), so
    each key of a rotating pool has its own rate-limit bucket. `clock` gives unix seconds,
    `sleep` takes seconds, `rng` gives a number in [0, 1).
    """

    config: LLMConfig
    health: HealthStore
    prices: Mapping[str, Price | None]
    has_key: Mapping[str, bool]
    call: Call
    sleep: Callable[[float], None]
    rng: Callable[[], float]
    clock: Callable[[], float] = time.time
    keys: Callable[[Candidate], KeyPool | None] = lambda _cand: None


@dataclass(frozen=True, slots=True)
class Answered:
    """A deployment answered; `attempts` counts every provider call made, this one included.
    `parsed` is the reply's JSON value when JSON was asked for (None otherwise, or for a
    refusal or a tool call)."""

    candidate: Candidate
    reply: ProviderReply
    attempts: int
    parsed: Any = None


@dataclass(frozen=True, slots=True)
class GaveUp:
    """No answer. `errors` = (deployment id, error) per failed call, in order; `wait_s` = the
    wait that was over a bound (None: the policy failed the call, or nothing could serve it);
    `incapable` = deployment ids skipped because they cannot honour the request's features."""

    errors: tuple[tuple[str, LLMProviderError], ...]
    attempts: int
    wait_s: float | None
    incapable: frozenset[str] = frozenset()


def call_direct(
    req: RouteRequest,
    temperature: float | None,
    deps: DirectDeps,
    max_waits: int,
    max_wait_s: float,
    features: Features = NO_FEATURES,
) -> Answered | GaveUp:
    """Serve `req` as a queued job would be served, sleeping where the job would be requeued.

    Args:
        req: the model name, messages, system prompt and max_tokens (None = the deployment's).
        temperature: None = the deployment's.
        deps: config, health store, prices, credentials, the call itself, clock and sleep.
        max_waits: sleeps allowed in this call (backoffs and waits for a slot together).
        max_wait_s: the longest single sleep (seconds); a longer wait gives up instead.
        features: output format, tools and sampling (already validated); deployments that
            cannot honour them are never tried.
    """
    policy = deps.config.routing
    route = route_deployment_ids(deps.config, req.model_name)
    probe_wait_s = max(policy.default_cooldown_s, MIN_WAIT_S)
    required = required_features(features, req.messages)
    by_id = {m.deployment_id: m for m in deps.config.models}
    incapable = incapable_ids((by_id[i] for i in route), required, deps.config)
    excluded: frozenset[str] = incapable
    errors: list[tuple[str, LLMProviderError]] = []
    attempts = waits = 0
    while True:
        now = deps.clock()
        snapshot = deps.health.snapshot(route, now)
        plan = rank_candidates(
            req, deps.config, snapshot, deps.prices, deps.has_key, now, excluded, deps.rng()
        )
        picked = _first_slot(deps, plan, snapshot, now, probe_wait_s)
        if picked is None:  # nothing can serve now: wait only if something merely cools down
            wake = next_wake(route, snapshot, deps.has_key, excluded, now)
            if wake is None:
                return GaveUp(tuple(errors), attempts, None, incapable)
            picked = wake - now
        if isinstance(picked, float):
            wait = max(picked, MIN_WAIT_S)
            if waits >= max_waits or wait > max_wait_s:
                return GaveUp(tuple(errors), attempts, wait, incapable)
            waits += 1
            deps.sleep(wait)
            continue
        i, cand, held = picked
        attempts += 1
        outcome = _call_once(deps, req, temperature, features, cand, held)
        if isinstance(outcome, tuple):
            return Answered(cand, outcome[0], attempts, outcome[1])
        errors.append((cand.deployment_id, outcome))
        decision = retry.decide(outcome, attempts, policy, len(plan) - i - 1, deps.rng())
        if decision.action == "fail":
            return GaveUp(tuple(errors), attempts, None, incapable)
        if decision.exclude:
            excluded = excluded | {cand.deployment_id}
        if decision.action == "retry_later":
            if waits >= max_waits or decision.delay_s > max_wait_s:
                return GaveUp(tuple(errors), attempts, decision.delay_s, incapable)
            waits += 1
            deps.sleep(decision.delay_s)


def _first_slot(
    deps: DirectDeps,
    plan: Sequence[Candidate],
    snapshot: HealthSnapshot,
    now: float,
    probe_wait_s: float,
) -> tuple[int, Candidate, Hold] | float | None:
    """The first candidate that gets a slot (its position in the plan), else the shortest
    wait; None for an empty plan. As in the queue's admission, minus the quota reservation:
    the direct call keeps no ledger, so a slot once taken is always used."""
    wait_s: float | None = None
    for i, cand in enumerate(plan):
        circuit = snapshot.get(cand.deployment_id).circuit
        held = take_slot(deps.health, cand, circuit, now, probe_wait_s, deps.keys(cand))
        if isinstance(held, Hold):
            return i, cand, held
        wait_s = held if wait_s is None else min(wait_s, held)
    return wait_s


def _call_once(
    deps: DirectDeps,
    req: RouteRequest,
    temperature: float | None,
    features: Features,
    cand: Candidate,
    held: Hold,
) -> tuple[ProviderReply, Any] | LLMProviderError:
    """One provider call, recorded in the health store as a queued attempt's call is, then
    its output checked: (reply, parsed JSON or None), or the error.

    An answer that does not fit the request (`InvalidOutput`) still counts as a success for
    the deployment's health: the provider is up and answering; the output is what failed."""
    dep = cand.deployment
    request = ProviderRequest(
        model_id=dep.model_id or dep.name,
        messages=req.messages,
        max_tokens=cand.max_tokens,
        system=req.system,
        temperature=dep.temperature if temperature is None else temperature,
        features=features,
    )
    started = time.monotonic()
    try:
        reply = deps.call(cand, request, held.key)
    except LLMProviderError as exc:
        deps.health.record_failure(held.slot_id, exc, deps.clock(), deps.config.routing)
        return exc
    latency_ms = reply.latency_ms or int((time.monotonic() - started) * 1000)
    deps.health.record_success(held.slot_id, latency_ms, reply.rate_limits, deps.clock())
    verdict = check_output(
        features, reply.text, reply.tool_calls, reply.refusal, reply.finish_reason
    )
    if isinstance(verdict, Valid):
        return reply, verdict.parsed
    if verdict.kind == "refused":  # the direct API returns a refusal in `refusal`, unretried
        return reply, None
    return InvalidOutput(
        verdict.reason,
        raw=reply.text,
        request_id=reply.request_id,
        provider=dep.provider.value,
        model=request.model_id,
        deployment=dep.deployment_id,
    )
