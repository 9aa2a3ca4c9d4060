"""Routing: turn a request, the configured deployments and a health snapshot into an ordered plan.

Owns: `RouteRequest`, `Candidate`, `rank_candidates`, `route_deployment_ids` and the cheap
prompt estimate used for ordering. Must not: touch Redis, the database, the clock or a random
source. Everything that varies (health, prices, credentials, `now`, `rng`) is passed in, so the
same inputs always give the same plan and the whole module is testable as a table.

The plan has tiers: the requested model's deployments first, then each model in
`config.fallbacks[name]` in the listed order (one level: a fallback's own fallbacks are not
followed, so a plan can never loop). Within a tier the configured strategy orders deployments.
A deployment serves only requests of its kind (`mode`: chat or embedding) and an embedding
fallback only in the job's vector space (`vector_space.refusal`, issue 17); it is a candidate
only if it honours every feature the request needs
(`required_features(req.features, req.messages)` within `capabilities_of(deployment, config)`,
issue 15); `unserved_feature` names the feature that left none, for the job's error.
Rate-limit headroom is *not* judged here: it must be checked and taken atomically, which is
`HealthStore.try_acquire`'s job at dispatch time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from schemas.config import LLMConfig, LLMModelConfig
from schemas.embedding import EmbeddingRequest
from schemas.job import ChatMessage
from schemas.request import NO_FEATURES, Feature, Features, in_order, required_features
from workers.providers import capabilities_of
from workers.routing import vector_space
from workers.routing._health_model import DeploymentHealth, HealthSnapshot

if TYPE_CHECKING:
    from workers.pricing import Price

# Per-message framing (role markers, separators) that providers add on top of the text.
MESSAGE_OVERHEAD_TOKENS = 4
# Roughly four UTF-8 bytes per token for English text; this is an ordering estimate, not a
# bound (the quota reservation uses its own guaranteed upper bound).
BYTES_PER_TOKEN = 4
# An ordering estimate for one input image (a 1024-px image on most providers), not a bound.
IMAGE_ESTIMATE_TOKENS = 1000
_MTOK = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What routing needs to know about a job. `max_tokens` None = the deployment's default;
    `features`: output format, tools and sampling, which a deployment must honour."""

    model_name: str
    messages: tuple[ChatMessage, ...]
    system: str | None = None
    max_tokens: int | None = None
    features: Features = NO_FEATURES
    embedding: EmbeddingRequest | None = None  # issue 17: an embedding job (no messages)

    def needs(self) -> frozenset[Feature]:
        """The features a deployment must honour to serve this request."""
        return required_features(self.features, self.messages)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One deployment the job may be sent to, with the estimates it was ranked by.

    `max_tokens` is resolved (request's, else the deployment's). `est_cost_usd` is None when the
    deployment's price is unknown.
    """

    deployment: LLMModelConfig
    model_name: str
    is_fallback: bool
    est_prompt_tokens: int
    max_tokens: int
    est_cost_usd: Decimal | None

    @property
    def deployment_id(self) -> str:
        return self.deployment.deployment_id


def estimate_prompt_tokens(messages: Sequence[ChatMessage], system: str | None) -> int:
    """UTF-8 bytes / 4 (rounded up) of the texts and tool calls, plus a small overhead per
    message and a flat estimate per image; the system prompt counts as one more message."""
    size = len(system.encode("utf-8")) if system else 0
    images = 0
    for m in messages:
        size += len(m.text.encode("utf-8"))
        size += sum(len(c.name) + len(c.arguments.encode("utf-8")) for c in m.tool_calls or ())
        images += len(m.images)
    count = len(messages) + (1 if system else 0)
    tokens = math.ceil(size / BYTES_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * count
    return tokens + IMAGE_ESTIMATE_TOKENS * images


def estimate_cost(price: Price | None, prompt_tokens: int, max_tokens: int) -> Decimal | None:
    """Input price x prompt tokens + output price x max_tokens, in USD; None if unpriced."""
    if price is None:
        return None
    return (price.input_per_mtok * prompt_tokens + price.output_per_mtok * max_tokens) / _MTOK


def route_deployment_ids(config: LLMConfig, model_name: str) -> tuple[str, ...]:
    """Every deployment id a plan for `model_name` can hold, in tier order: its own, then its
    fallback models' (the tiers of `rank_candidates`, before any filtering)."""
    names = [model_name, *config.fallbacks.get(model_name, [])]
    found = (m.deployment_id for n in names for m in config.deployments_for(n))
    return tuple(dict.fromkeys(found))


def rank_candidates(
    req: RouteRequest,
    config: LLMConfig,
    health: HealthSnapshot,
    prices: Mapping[str, Price | None],
    has_key: Mapping[str, bool],
    now: float,
    excluded: frozenset[str] = frozenset(),
    rng: float = 0.5,
) -> list[Candidate]:
    """The ordered plan for one attempt: every deployment that could serve `req` right now.

    Args:
        req: the model name, prompt and requested max_tokens.
        config: deployments, fallbacks and `routing.strategy`.
        health: cooldowns, circuits and observed latency/success per deployment id.
        prices: deployment id -> price (None or missing = unknown).
        has_key: deployment id -> credentials present (missing = no credentials).
        now: unix seconds, compared with cooldown and circuit deadlines.
        excluded: deployment ids this job already proved bad.
        rng: a number in [0, 1) that drives the `weighted` strategy (ignored by the others).

    Returns:
        Candidates, primary tier first, then fallback tiers in `config.fallbacks` order.
        Empty when nothing can serve the request now.
    """
    prompt, per_call = _estimates(req)
    need = req.needs()
    order = _ORDERINGS[config.routing.strategy]
    position = {m.deployment_id: i for i, m in enumerate(config.models)}
    seen: set[str] = set(excluded)
    plan: list[Candidate] = []
    tiers = [req.model_name, *config.fallbacks.get(req.model_name, [])]
    for tier_no, name in enumerate(tiers):
        tier: list[Candidate] = []
        for dep in config.deployments_for(name):
            dep_id = dep.deployment_id
            if dep_id in seen:
                continue
            seen.add(dep_id)  # a deployment appears once, in its first tier
            if vector_space.refusal(dep, req.model_name, req.embedding, config) is not None:
                continue  # chat vs embedding, and never a fallback across vector spaces
            max_tokens = 0 if req.embedding else req.max_tokens or dep.max_tokens
            if not _can_serve(dep, health.get(dep_id), has_key, now, per_call + max_tokens):
                continue
            if need and not need <= capabilities_of(dep, config):
                continue
            cost = estimate_cost(prices.get(dep_id), prompt, max_tokens)
            tier.append(Candidate(dep, name, tier_no > 0, prompt, max_tokens, cost))
        plan.extend(order(tier, health, position, rng))
    return plan


def _estimates(req: RouteRequest) -> tuple[int, int]:
    """(prompt tokens to price, tokens one call's context window must hold)."""
    if req.embedding is None:
        prompt = estimate_prompt_tokens(req.messages, req.system)
        return prompt, prompt
    e = req.embedding
    return vector_space.prompt_tokens(e), vector_space.longest_input_tokens(e)


def unserved_feature(req: RouteRequest, config: LLMConfig) -> str | None:
    """Why no configured deployment of the plan's tiers can serve `req`'s features, or None
    when some can (health and credentials aside): ``no deployment of MODEL supports FEATURE``,
    naming the first feature (in `Feature` order) that leaves none, as submit does."""
    need = req.needs()
    if not need:
        return None
    able = [capabilities_of(d, config) for d in _tier_deployments(config, req.model_name)]
    for feature in in_order(need):
        able = [caps for caps in able if feature in caps]
        if not able:
            return f"no deployment of {req.model_name} supports {feature}"
    return None


def _tier_deployments(config: LLMConfig, model_name: str) -> list[LLMModelConfig]:
    names = [model_name, *config.fallbacks.get(model_name, [])]
    found = {m.deployment_id: m for n in names for m in config.deployments_for(n)}
    return list(found.values())


def _can_serve(
    dep: LLMModelConfig,
    h: DeploymentHealth,
    has_key: Mapping[str, bool],
    now: float,
    needed_tokens: int,
) -> bool:
    if not has_key.get(dep.deployment_id, False):
        return False
    if h.cooldown_until > now:
        return False
    # An open circuit whose deadline has passed is half-open: one probe may go through
    # (`claim_probe` decides who), so it stays in the plan.
    if h.circuit == "open" and h.open_until > now:
        return False
    return dep.context_window is None or needed_tokens <= dep.context_window


_Ordering = Callable[[list[Candidate], HealthSnapshot, Mapping[str, int], float], list[Candidate]]


def _by_cost(
    tier: list[Candidate], health: HealthSnapshot, position: Mapping[str, int], rng: float
) -> list[Candidate]:
    """Cheapest first (unknown price last), then lower latency, higher success, config order."""

    def key(c: Candidate) -> tuple[object, ...]:
        h = health.get(c.deployment_id)
        success = 1.0 if h.success_rate is None else h.success_rate  # unknown = benefit of doubt
        return (
            c.est_cost_usd is None,
            c.est_cost_usd or Decimal(0),
            h.latency_ms is None,
            h.latency_ms or 0.0,
            -success,
            position[c.deployment_id],
        )

    return sorted(tier, key=key)


def _by_priority(
    tier: list[Candidate], health: HealthSnapshot, position: Mapping[str, int], rng: float
) -> list[Candidate]:
    return sorted(tier, key=lambda c: (c.deployment.priority, position[c.deployment_id]))


def _by_latency(
    tier: list[Candidate], health: HealthSnapshot, position: Mapping[str, int], rng: float
) -> list[Candidate]:
    def key(c: Candidate) -> tuple[object, ...]:
        latency = health.get(c.deployment_id).latency_ms
        return (latency is None, latency or 0.0, position[c.deployment_id])

    return sorted(tier, key=key)


def _weighted(
    tier: list[Candidate], health: HealthSnapshot, position: Mapping[str, int], rng: float
) -> list[Candidate]:
    """A weighted shuffle from a single number: pick by cumulative weight, then reuse where
    `rng` fell inside the chosen slice (itself uniform in [0, 1)) for the next pick. Each
    deployment is first with probability weight / total weight."""
    pool = sorted(tier, key=lambda c: position[c.deployment_id])
    r = min(max(rng, 0.0), math.nextafter(1.0, 0.0))
    out: list[Candidate] = []
    while pool:
        total = sum(c.deployment.weight for c in pool)
        target = r * total
        chosen, acc = _slice_at(pool, target)
        w = pool[chosen].deployment.weight
        r = min(max((target - acc) / w, 0.0), math.nextafter(1.0, 0.0))
        out.append(pool.pop(chosen))
    return out


def _slice_at(pool: list[Candidate], target: float) -> tuple[int, float]:
    """Index of the weight slice containing `target`, and where that slice starts."""
    acc = 0.0
    for i, c in enumerate(pool[:-1]):
        if target < acc + c.deployment.weight:
            return i, acc
        acc += c.deployment.weight
    return len(pool) - 1, acc  # the last slice, also catching float rounding at the top


_ORDERINGS: dict[str, _Ordering] = {
    "cost": _by_cost,
    "priority": _by_priority,
    "latency": _by_latency,
    "weighted": _weighted,
}
