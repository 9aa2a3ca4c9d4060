"""Prometheus metrics computed at scrape time from the ledger and the Redis health store.

Owns: `LedgerCollector`, a custom prometheus_client Collector, and `quota_uses` (the quota
report as the alerts read it). The SQL lives in the ledger: `core.ledger.metrics_repo` and
`core.ledger.quota_report_repo`.

Why a collector and not in-process counters: llmq runs many worker processes on many machines;
per-process counters would need a multiprocess directory and would drift from the ledger after a
crash. Aggregating the ledger on each scrape makes every counter equal the ledger by
construction, whichever process served it (`llmq metrics --port P` is one small process).

Must not: write anything, or expose prompt text, result text, error messages or keys; labels are
provider, model, deployment, outcome, error kind, tenant and state only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from core.ledger import metrics_repo
from workers.observability.alerts import QuotaUse

log = logging.getLogger("llmq.metrics")

# Seconds. LLM calls span ~100 ms (cache-warm small models) to minutes (long generations).
LATENCY_BUCKETS_S: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
CIRCUIT_STATES = ("closed", "half_open", "open")


def quota_uses(conn: Connection, now: datetime) -> list[QuotaUse]:
    """Every known tenant's current day and month window, as `llmq quota show` reports them
    (quota_report_repo's read; a window's own limits are what reservations check)."""
    from core.ledger.quota_report_repo import quota_report

    with Session(bind=conn) as session:
        reports = quota_report(session, None, now)
    return [
        QuotaUse(
            r.tenant,
            r.period,
            Decimal(r.used_usd) + Decimal(r.reserved_usd),
            r.limit_usd,
            int(r.used_tokens) + int(r.reserved_tokens),
            r.limit_tokens,
        )
        for r in reports
        if r.period != "batch"
    ]


# ---- the collector ---------------------------------------------------------------------------


class LedgerCollector:
    """Builds every llmq metric on each scrape.

    Parameters:
        engine: the ledger's Engine (read-only use).
        health: a HealthStore (workers.routing.health) or None; gives circuit state.
        deployment_ids: called on each scrape; the configured deployment ids.
        clock: returns the current time (UTC datetime); injectable for tests.
    """

    def __init__(
        self,
        engine: Engine,
        health: Any | None = None,
        deployment_ids: Callable[[], Sequence[str]] = tuple,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._health = health
        self._deployment_ids = deployment_ids
        self._clock = clock

    def describe(self) -> list[Metric]:
        # An empty describe keeps registration from running a full scrape (queries) up front.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("llmq_ledger_up", "1 if the ledger could be read at this scrape")
        try:
            with self._engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    # one snapshot for every query, so the families agree with each other
                    conn = conn.execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    )
                with conn.begin():
                    metrics = list(self._ledger_metrics(conn))
            up.add_metric([], 1)
        except Exception as exc:  # noqa: BLE001 - a scrape reports the outage, never crashes
            log.warning("metrics: ledger query failed: %s", type(exc).__name__)
            metrics = []
            up.add_metric([], 0)
        yield up
        yield from metrics
        yield from self._health_metrics()

    def _ledger_metrics(self, conn: Connection) -> Iterator[Metric]:
        pm = ["provider", "model"]
        req = CounterMetricFamily(
            "llmq_provider_requests", "Finished provider calls", labels=[*pm, "outcome"]
        )
        for p, m, o, n in metrics_repo.requests_by_outcome(conn):
            req.add_metric([p, m, o], n)
        yield req
        err = CounterMetricFamily(
            "llmq_provider_errors", "Failed provider calls by kind", labels=[*pm, "error_kind"]
        )
        for p, m, k, n in metrics_repo.errors_by_kind(conn):
            err.add_metric([p, m, k], n)
        yield err
        flight = GaugeMetricFamily(
            "llmq_provider_requests_in_flight", "Calls started, not finished", labels=["provider"]
        )
        for p, n in metrics_repo.in_flight(conn):
            flight.add_metric([p], n)
        yield flight
        yield self._latency(conn)
        yield from self._usage(conn)
        yield from self._retries(conn)
        jobs = GaugeMetricFamily("llmq_jobs", "Jobs by state", labels=["state"])
        for state, n in metrics_repo.jobs_by_state(conn).items():
            jobs.add_metric([state], n)
        yield jobs
        yield from self._quota(conn)
        yield from self._lanes(conn)

    def _lanes(self, conn: Connection) -> Iterator[Metric]:
        """Issue 18: open provider batches per deployment and the oldest one's age (the
        dashboard's alert rules use these exact names)."""
        from core.ledger.lanes_reads_repo import open_batches

        opened = GaugeMetricFamily(
            "llmq_provider_batches_open", "Provider batches not yet applied", labels=["deployment"]
        )
        age = GaugeMetricFamily(
            "llmq_provider_batch_oldest_age_seconds",
            "Age of the oldest open provider batch, seconds",
            labels=["deployment"],
        )
        now = self._clock()
        with Session(bind=conn) as session:
            for dep, (n, oldest) in sorted(open_batches(session).items()):
                opened.add_metric([dep], n)
                age.add_metric([dep], max((now - oldest).total_seconds(), 0.0))
        yield opened
        yield age

    def _latency(self, conn: Connection) -> Metric:
        hist = HistogramMetricFamily(
            "llmq_provider_latency_seconds", "Provider call latency", labels=["provider", "model"]
        )
        for p, m, counts, n, total_s in metrics_repo.latency_histogram(conn, LATENCY_BUCKETS_S):
            buckets = [
                (floatToGoString(b), c) for b, c in zip(LATENCY_BUCKETS_S, counts, strict=True)
            ]
            hist.add_metric([p, m], [*buckets, ("+Inf", n)], total_s)
        return hist

    def _usage(self, conn: Connection) -> Iterator[Metric]:
        tokens = CounterMetricFamily(
            "llmq_tokens", "Tokens used by provider calls", labels=["provider", "model", "kind"]
        )
        cost = CounterMetricFamily(
            "llmq_cost_usd",
            "USD spent on provider calls (priced calls)",
            labels=["provider", "model"],
        )
        unpriced = CounterMetricFamily(
            "llmq_unpriced_calls",
            "Successful calls whose price was unknown",
            labels=["provider", "model"],
        )
        for p, m, prompt, completion, usd, unknown in metrics_repo.usage_totals(conn):
            tokens.add_metric([p, m, "prompt"], prompt)
            tokens.add_metric([p, m, "completion"], completion)
            cost.add_metric([p, m], float(usd))
            unpriced.add_metric([p, m], unknown)
        hits = CounterMetricFamily(
            "llmq_cache_hits", "Jobs answered from the cache", labels=["model"]
        )
        saved = CounterMetricFamily(
            "llmq_cache_saved_usd", "USD not spent thanks to the cache", labels=["model"]
        )
        for m, n, usd in metrics_repo.cache_hits(conn):
            hits.add_metric([m], n)
            saved.add_metric([m], float(usd))
        yield from (tokens, cost, unpriced, hits, saved)

    def _retries(self, conn: Connection) -> Iterator[Metric]:
        retries = CounterMetricFamily(
            "llmq_retries", "Attempts repeating the previous deployment", labels=["provider"]
        )
        fallbacks = CounterMetricFamily(
            "llmq_fallbacks", "Attempts moved to another deployment", labels=["provider"]
        )
        for p, r, f in metrics_repo.retries_and_fallbacks(conn):
            retries.add_metric([p], r)
            fallbacks.add_metric([p], f)
        yield retries
        yield fallbacks

    def _quota(self, conn: Connection) -> Iterator[Metric]:
        labels = ["tenant", "period"]
        g = {
            name: GaugeMetricFamily(f"llmq_quota_{name}", help_, labels=labels)
            for name, help_ in (
                ("limit_usd", "Tenant USD limit for the current window"),
                ("used_usd", "USD spent plus reserved in the current window"),
                ("headroom_usd", "USD left in the current window"),
                ("limit_tokens", "Tenant token limit for the current window"),
                ("used_tokens", "Tokens spent plus reserved in the current window"),
                ("headroom_tokens", "Tokens left in the current window"),
            )
        }
        for q in quota_uses(conn, self._clock()):
            key = [q.tenant, q.period]
            g["used_usd"].add_metric(key, float(q.used_usd))
            g["used_tokens"].add_metric(key, q.used_tokens)
            if q.limit_usd is not None:
                g["limit_usd"].add_metric(key, float(q.limit_usd))
                g["headroom_usd"].add_metric(key, float(q.limit_usd - q.used_usd))
            if q.limit_tokens is not None:
                g["limit_tokens"].add_metric(key, q.limit_tokens)
                g["headroom_tokens"].add_metric(key, q.limit_tokens - q.used_tokens)
        yield from g.values()

    def _health_metrics(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("llmq_health_store_up", "1 if the health store could be read")
        circuit = GaugeMetricFamily(
            "llmq_circuit_state",
            "1 for the deployment's current circuit state",
            labels=["deployment", "state"],
        )
        cooling = GaugeMetricFamily(
            "llmq_deployment_cooldown_seconds",
            "Seconds until a cooldown ends (0 = none)",
            labels=["deployment"],
        )
        ok = 1
        if self._health is not None:
            try:
                ids = list(self._deployment_ids())
                now = time.time()
                snap = self._health.snapshot(ids, now)
                for dep in ids:
                    h = snap.get(dep)
                    for state in CIRCUIT_STATES:
                        circuit.add_metric([dep, state], 1 if h.circuit == state else 0)
                    cooling.add_metric([dep], max(0.0, h.cooldown_until - now))
            except Exception as exc:  # noqa: BLE001 - report the outage, keep the ledger metrics
                log.warning("metrics: health store read failed: %s", type(exc).__name__)
                ok = 0
        up.add_metric([], ok)
        yield from (up, circuit, cooling)
