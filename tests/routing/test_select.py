"""rank_candidates as a table: (request, deployments, health, prices, keys, now) -> ordered plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from schemas.config import LLMConfig
from schemas.job import ChatMessage
from workers.pricing import Price
from workers.routing.health import DeploymentHealth, HealthSnapshot
from workers.routing.select import (
    RouteRequest,
    estimate_prompt_tokens,
    rank_candidates,
)

NOW = 1_700_000_000.0


def price(inp: str, out: str) -> Price:
    return Price(Decimal(inp), Decimal(out), "config", "test")


# Deployment ids: provider/model_id. Model "chat" on four providers, fallback "backup" on two.
MODELS = [
    {"name": "chat", "provider": "openai", "model_id": "c-oa", "context_window": 8000},
    {"name": "chat", "provider": "anthropic", "model_id": "c-an", "context_window": 200},
    {"name": "chat", "provider": "local", "model_id": "c-lo"},
    {"name": "chat", "provider": "google", "model_id": "c-go", "priority": -1},
    {"name": "backup", "provider": "cohere", "model_id": "b-co"},
    {"name": "backup", "provider": "huggingface", "model_id": "b-hf"},
    {"name": "solo", "provider": "openai", "model_id": "s-oa"},
]
OA, AN, LO, GO, CO, HF = "openai/c-oa", "anthropic/c-an", "local/c-lo", "google/c-go", "cohere/b-co", "huggingface/b-hf"  # fmt: skip
ALL = [OA, AN, LO, GO, CO, HF, "openai/s-oa"]

PRICES = {
    OA: price("2", "8"),
    AN: price("1", "4"),
    LO: None,  # unknown price
    GO: price("0.1", "0.4"),
    CO: price("0.01", "0.01"),  # cheapest of all, but a fallback
    HF: price("0.5", "1"),
}

HELLO = (ChatMessage(role="user", content="hello world!"),)  # 12 bytes -> 3 + 4 = 7 tokens


def config(strategy: str = "cost", **overrides: object) -> LLMConfig:
    models = [dict(m) for m in MODELS]
    for m in models:
        m.update(overrides.get(f"{m['provider']}/{m['model_id']}", {}))  # type: ignore[arg-type]
    return LLMConfig.model_validate(
        {"models": models, "fallbacks": {"chat": ["backup"]}, "routing": {"strategy": strategy}}
    )


@dataclass
class Case:
    name: str
    expected: list[str]
    strategy: str = "cost"
    health: dict[str, DeploymentHealth] = field(default_factory=dict)
    keys: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(ALL, True))
    prices: dict[str, Price | None] = field(default_factory=lambda: dict(PRICES))
    excluded: frozenset[str] = frozenset()
    max_tokens: int | None = 100
    model: str = "chat"
    overrides: dict[str, dict[str, object]] = field(default_factory=dict)
    messages: tuple[ChatMessage, ...] = HELLO


def cooling(until: float) -> DeploymentHealth:
    return DeploymentHealth(cooldown_until=until)


def circuit(state: str, until: float) -> DeploymentHealth:
    return DeploymentHealth(circuit=state, open_until=until)  # type: ignore[arg-type]


def observed(latency: float | None, success: float | None) -> DeploymentHealth:
    return DeploymentHealth(latency_ms=latency, success_rate=success, calls=10)


CASES = [
    Case("cost: cheapest first, unknown price last, fallbacks after", [GO, AN, OA, LO, CO, HF]),
    Case("no key dropped", [AN, OA, LO, CO, HF], keys={**dict.fromkeys(ALL, True), GO: False}),
    Case(
        "missing from has_key = no key",
        [GO, AN, LO, CO, HF],
        keys={k: True for k in ALL if k != OA},
    ),  # fmt: skip
    Case("cooling down dropped", [AN, OA, LO, CO, HF], health={GO: cooling(NOW + 1)}),
    Case("cooldown ended is kept", [GO, AN, OA, LO, CO, HF], health={GO: cooling(NOW)}),
    Case("open circuit dropped", [GO, OA, LO, CO, HF], health={AN: circuit("open", NOW + 5)}),
    Case(
        "half-open kept in place",
        [GO, AN, OA, LO, CO, HF],
        health={AN: circuit("half_open", NOW - 1)},
    ),  # fmt: skip
    Case(
        "open past deadline = half-open",
        [GO, AN, OA, LO, CO, HF],
        health={AN: circuit("open", NOW)},
    ),  # fmt: skip
    Case("excluded dropped", [GO, OA, LO, HF], excluded=frozenset({AN, CO})),
    Case("context too small dropped (200 < 7 + 500)", [GO, OA, LO, CO, HF], max_tokens=500),
    Case("context exactly full kept (7 + 193 = 200)", [GO, AN, OA, LO, CO, HF], max_tokens=193),
    Case("context one over dropped (7 + 194)", [GO, OA, LO, CO, HF], max_tokens=194),
    Case("deployment max_tokens used when request has none", [GO, OA, LO, CO, HF], max_tokens=None),
    Case(
        "deployment max_tokens small enough",
        [GO, AN, OA, LO, CO, HF],
        max_tokens=None,
        overrides={AN: {"max_tokens": 150}},
    ),  # fmt: skip
    Case("no price anywhere: config order", [OA, AN, LO, GO, CO, HF], prices={}),
    Case(
        "cost tie: lower latency first",
        [AN, LO, OA, GO, CO, HF],
        prices={},
        health={AN: observed(100, 1.0), OA: observed(300, 1.0), LO: observed(200, 1.0)},
    ),  # fmt: skip
    Case(
        "cost tie, unknown latency after known",
        [LO, OA, AN, GO, CO, HF],
        prices={},
        health={LO: observed(900, 0.1)},
    ),  # fmt: skip
    Case(
        "cost+latency tie: higher success first",
        [AN, OA, LO, GO, CO, HF],
        prices={},
        health={
            OA: observed(100, 0.5),
            AN: observed(100, 0.9),
            LO: observed(100, 0.1),
            GO: observed(100, 0.0),
        },
    ),  # fmt: skip
    Case(
        "unknown success counts as healthy",
        [AN, OA, LO, GO, CO, HF],
        prices={},
        health={
            OA: observed(100, 0.9),
            AN: observed(100, None),
            LO: observed(100, 0.5),
            GO: observed(100, 0.4),
        },
    ),  # fmt: skip
    Case("priority: priority then config order", [GO, OA, AN, LO, CO, HF], strategy="priority"),
    Case(
        "priority overrides",
        [LO, GO, OA, AN, HF, CO],
        strategy="priority",
        overrides={LO: {"priority": -5}, HF: {"priority": -9}},
    ),  # fmt: skip
    Case(
        "latency: fastest first, unknown last",
        [LO, AN, OA, GO, HF, CO],
        strategy="latency",
        health={AN: observed(200, 1), LO: observed(50, 1), HF: observed(10, 1)},
    ),  # fmt: skip
    Case("unknown model: empty plan", [], model="nope"),
    Case("model without fallbacks", ["openai/s-oa"], model="solo"),
    Case("everything down: empty plan", [], keys={}),
    Case("only fallbacks left", [CO, HF], excluded=frozenset({OA, AN, LO, GO})),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rank_candidates(case: Case) -> None:
    req = RouteRequest(case.model, case.messages, None, case.max_tokens)
    snap = HealthSnapshot(case.health)
    plan = rank_candidates(
        req, config(case.strategy, **case.overrides), snap, case.prices, case.keys, NOW, case.excluded
    )  # fmt: skip
    assert [c.deployment_id for c in plan] == case.expected


def test_candidate_fields() -> None:
    req = RouteRequest("chat", HELLO, "be brief", None)  # system: 8 bytes -> 2 + 4 tokens
    keys = dict.fromkeys(ALL, True)
    plan = rank_candidates(req, config(), HealthSnapshot(), PRICES, keys, NOW)
    by_id = {c.deployment_id: c for c in plan}
    go = by_id[GO]
    assert (go.model_name, go.is_fallback, go.est_prompt_tokens, go.max_tokens) == (
        "chat", False, 13, 1024
    )  # fmt: skip
    # 0.1 $/Mtok x 13 + 0.4 $/Mtok x 1024
    assert go.est_cost_usd == (Decimal("0.1") * 13 + Decimal("0.4") * 1024) / Decimal(10**6)
    assert by_id[LO].est_cost_usd is None
    assert by_id[CO].is_fallback and by_id[CO].model_name == "backup"
    assert AN not in by_id  # 13 + 1024 > its 200-token window


@pytest.mark.parametrize(
    ("messages", "system", "tokens"),
    [
        ((), None, 0),
        ((ChatMessage(role="user", content=""),), None, 4),
        ((ChatMessage(role="user", content="abcd"),), None, 5),
        ((ChatMessage(role="user", content="abcde"),), None, 6),  # rounds up
        ((ChatMessage(role="user", content="é" * 4),), None, 6),  # 8 UTF-8 bytes
        (
            (ChatMessage(role="user", content="a"), ChatMessage(role="assistant", content="b")),
            "sys",
            14,
        ),  # fmt: skip
    ],
)
def test_estimate_prompt_tokens(
    messages: tuple[ChatMessage, ...], system: str | None, tokens: int
) -> None:
    assert estimate_prompt_tokens(messages, system) == tokens


def test_fallback_listing_a_primary_deployment_appears_once() -> None:
    cfg = LLMConfig.model_validate(
        {
            "models": [
                {"name": "a", "provider": "openai", "model_id": "x"},
                {"name": "b", "provider": "anthropic", "model_id": "y"},
            ],
            "fallbacks": {"a": ["b", "a", "b"]},
        }
    )
    keys = {"openai/x": True, "anthropic/y": True}
    plan = rank_candidates(RouteRequest("a", HELLO), cfg, HealthSnapshot(), {}, keys, NOW)
    assert [(c.deployment_id, c.is_fallback) for c in plan] == [
        ("openai/x", False),
        ("anthropic/y", True),
    ]


# ---- weighted -------------------------------------------------------------------------------

WEIGHTS = {OA: 1.0, AN: 3.0, LO: 6.0, GO: 0.0001}


def weighted_plan(rng: float) -> list[str]:
    cfg = config(
        "weighted", **{k: {"weight": w, "context_window": None} for k, w in WEIGHTS.items()}
    )
    req = RouteRequest("chat", HELLO, None, 100)
    keys = dict.fromkeys(ALL, True)
    return [c.deployment_id for c in rank_candidates(req, cfg, HealthSnapshot(), PRICES, keys, NOW, rng=rng)]  # fmt: skip


@pytest.mark.parametrize(
    ("rng", "first"),
    [
        (0.0, OA),
        (0.0999, OA),
        (0.1001, AN),
        (0.3999, AN),
        (0.4001, LO),
        (0.99999, LO),
        (0.999999999, GO),
    ],
)
def test_weighted_first_pick_follows_cumulative_weight(rng: float, first: str) -> None:
    assert weighted_plan(rng)[0] == first


def test_weighted_is_deterministic_and_a_permutation_per_tier() -> None:
    for i in range(200):
        rng = i / 200
        plan = weighted_plan(rng)
        assert plan == weighted_plan(rng)
        assert sorted(plan[:4]) == sorted([OA, AN, LO, GO])
        assert sorted(plan[4:]) == sorted([CO, HF])  # fallbacks stay after the primaries


def test_weighted_spreads_first_and_second_picks_by_weight() -> None:
    n = 10_000
    firsts: dict[str, int] = {}
    seconds_after_lo: dict[str, int] = {}
    for i in range(n):
        plan = weighted_plan((i + 0.5) / n)
        firsts[plan[0]] = firsts.get(plan[0], 0) + 1
        if plan[0] == LO:
            seconds_after_lo[plan[1]] = seconds_after_lo.get(plan[1], 0) + 1
    total = sum(WEIGHTS.values())
    for dep, w in WEIGHTS.items():
        assert abs(firsts.get(dep, 0) / n - w / total) < 0.002
    # Given LO first, the rest follow their weights among OA, AN, GO (1 : 3 : ~0).
    lo_n = firsts[LO]
    assert abs(seconds_after_lo[OA] / lo_n - 0.25) < 0.01
    assert abs(seconds_after_lo[AN] / lo_n - 0.75) < 0.01


def test_pure_same_inputs_same_plan_inputs_untouched() -> None:
    cfg = config()
    prices = dict(PRICES)
    keys = dict.fromkeys(ALL, True)
    snap = HealthSnapshot({OA: observed(10, 1.0)})
    req = RouteRequest("chat", HELLO, None, 100)
    first = rank_candidates(req, cfg, snap, prices, keys, NOW)
    again = rank_candidates(req, cfg, snap, prices, keys, NOW)
    assert first == again
    assert prices == PRICES and keys == dict.fromkeys(ALL, True)
    assert cfg == config()
