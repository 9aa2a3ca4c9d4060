"""The ledger collector against a real Postgres: every family is what the rows say
(fixture rows from conftest.py `ledger`)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from workers.observability.metrics import LedgerCollector

from .conftest import NOW


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_collector_matches_rows(ledger) -> None:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(ledger, clock=lambda: NOW))
    m = _samples(registry)

    def v(name: str, **labels: str) -> float:
        return m[(name, tuple(sorted(labels.items())))]

    assert v("llmq_ledger_up") == 1
    req = "llmq_provider_requests_total"
    assert v(req, provider="openai", model="gpt-a", outcome="succeeded") == 2
    assert v(req, provider="openai", model="gpt-a", outcome="failed") == 2
    assert v(req, provider="openai", model="gpt-a", outcome="superseded") == 1
    assert v(req, provider="anthropic", model="claude-b", outcome="succeeded") == 1
    assert not [k for k in m if k[0] == req and ("outcome", "cache_hit") in k[1]]
    assert v("llmq_provider_requests_in_flight", provider="anthropic") == 1
    assert v("llmq_provider_errors_total", provider="openai", model="gpt-a",
             error_kind="rate_limited") == 1  # fmt: skip

    lat = "llmq_provider_latency_seconds"
    oa = {"provider": "openai", "model": "gpt-a"}
    # openai/gpt-a latencies: 50, 300, 1200, 700, 100 ms
    assert v(f"{lat}_bucket", **oa, le="0.1") == 2
    assert v(f"{lat}_bucket", **oa, le="0.5") == 3
    assert v(f"{lat}_bucket", **oa, le="1.0") == 4
    assert v(f"{lat}_bucket", **oa, le="2.5") == 5
    assert v(f"{lat}_bucket", **oa, le="+Inf") == 5
    assert v(f"{lat}_count", **oa) == 5
    assert v(f"{lat}_sum", **oa) == pytest.approx(2.35)

    assert v("llmq_tokens_total", **oa, kind="prompt") == 17
    assert v("llmq_tokens_total", **oa, kind="completion") == 12
    assert v("llmq_cost_usd_total", **oa) == pytest.approx(0.0015)
    assert v("llmq_cost_usd_total", provider="anthropic", model="claude-b") == pytest.approx(0.002)
    assert v("llmq_unpriced_calls_total", **oa) == 1
    assert v("llmq_cache_hits_total", model="gpt-a") == 1
    assert v("llmq_cache_saved_usd_total", model="gpt-a") == pytest.approx(0.003)

    assert v("llmq_retries_total", provider="openai") == 2
    assert v("llmq_fallbacks_total", provider="anthropic") == 1

    assert v("llmq_jobs", state="succeeded") == 4
    assert v("llmq_jobs", state="queued") == 1
    assert v("llmq_jobs", state="failed") == 0  # every state is present

    day = {"tenant": "acme", "period": "day"}
    assert v("llmq_quota_limit_usd", **day) == 1.0
    assert v("llmq_quota_used_usd", **day) == 0.25
    assert v("llmq_quota_headroom_usd", **day) == 0.75
    assert v("llmq_quota_headroom_tokens", **day) == 900
    assert ("llmq_quota_headroom_usd", (("period", "month"), ("tenant", "acme"))) not in m


def test_circuit_state_from_memory_health_store(ledger) -> None:  # type: ignore[no-untyped-def]
    health = pytest.importorskip("workers.routing.health")
    from core.errors import AuthFailed
    from schemas.config import RoutingSettings

    store = health.MemoryHealthStore()
    store.record_failure("openai/gpt-a", AuthFailed("bad key", provider="openai", status=401),
                         __import__("time").time(), RoutingSettings())  # fmt: skip
    registry = CollectorRegistry(auto_describe=False)
    ids = ("openai/gpt-a", "anthropic/claude-b")
    registry.register(LedgerCollector(ledger, store, lambda: ids, clock=lambda: NOW))
    m = _samples(registry)
    assert m[("llmq_health_store_up", ())] == 1
    key = "llmq_circuit_state"
    assert m[(key, (("deployment", "openai/gpt-a"), ("state", "open")))] == 1
    assert m[(key, (("deployment", "openai/gpt-a"), ("state", "closed")))] == 0
    assert m[(key, (("deployment", "anthropic/claude-b"), ("state", "closed")))] == 1


def test_ledger_outage_is_reported_not_raised() -> None:
    from sqlalchemy import create_engine

    dead = create_engine("postgresql+psycopg://127.0.0.1:1/nope")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(dead))
    m = _samples(registry)
    assert m[("llmq_ledger_up", ())] == 0
