"""The read-only aggregates behind the Prometheus metrics: calls, errors, latency, usage, cache
hits, retries and fallbacks, and jobs by state, over the whole ledger.

Owns: these queries over `attempts` and `jobs`; each takes an open Connection (the collector
runs them all in one read-only snapshot) and returns plain tuples. Must not: write anything,
know about Prometheus (`workers.observability.metrics` builds the metric families), or return
prompt text, result text, error messages or keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, func, select

from core.ledger.models import Attempt, Job
from schemas.job import AttemptOutcome, JobState

# Calls that reached a provider (or were cut off by a dead worker) and are finished.
_CALLED = (
    AttemptOutcome.SUCCEEDED.value,
    AttemptOutcome.FAILED.value,
    AttemptOutcome.SUPERSEDED.value,
    AttemptOutcome.LOST.value,
)


def _calls_filter() -> Any:
    return Attempt.outcome.in_(_CALLED)


def requests_by_outcome(conn: Connection) -> list[tuple[str, str, str, int]]:
    """(provider, model, outcome, count) over finished provider calls."""
    q = (
        select(Attempt.provider, Attempt.model, Attempt.outcome, func.count())
        .where(_calls_filter())
        .group_by(Attempt.provider, Attempt.model, Attempt.outcome)
    )
    return [(p, m, o, int(n)) for p, m, o, n in conn.execute(q)]


def errors_by_kind(conn: Connection) -> list[tuple[str, str, str, int]]:
    q = (
        select(Attempt.provider, Attempt.model, Attempt.error_kind, func.count())
        .where(_calls_filter(), Attempt.error_kind.is_not(None))
        .group_by(Attempt.provider, Attempt.model, Attempt.error_kind)
    )
    return [(p, m, k, int(n)) for p, m, k, n in conn.execute(q)]


def in_flight(conn: Connection) -> list[tuple[str, int]]:
    q = (
        select(Attempt.provider, func.count())
        .where(Attempt.outcome == AttemptOutcome.STARTED.value)
        .group_by(Attempt.provider)
    )
    return [(p, int(n)) for p, n in conn.execute(q)]


def latency_histogram(
    conn: Connection, buckets_s: Sequence[float]
) -> list[tuple[str, str, list[int], int, float]]:
    """(provider, model, cumulative counts per bucket, count, sum in seconds), bucketed in SQL.

    Args:
        buckets_s: the histogram's upper bounds (seconds), ascending.
    """
    cols = [func.sum(case((Attempt.latency_ms <= int(b * 1000), 1), else_=0)) for b in buckets_s]
    q = (
        select(Attempt.provider, Attempt.model, func.count(), func.sum(Attempt.latency_ms), *cols)
        .where(_calls_filter(), Attempt.latency_ms.is_not(None))
        .group_by(Attempt.provider, Attempt.model)
    )
    rows = []
    for p, m, n, total_ms, *counts in conn.execute(q):
        rows.append((p, m, [int(c or 0) for c in counts], int(n), float(total_ms or 0) / 1000))
    return rows


def usage_totals(conn: Connection) -> list[tuple[str, str, int, int, Decimal, int]]:
    """(provider, model, prompt tokens, completion tokens, cost USD, calls with unknown cost)."""
    q = (
        select(
            Attempt.provider,
            Attempt.model,
            func.coalesce(func.sum(Attempt.prompt_tokens), 0),
            func.coalesce(func.sum(Attempt.completion_tokens), 0),
            func.coalesce(func.sum(Attempt.cost_usd), 0),
            # as `llmq usage` counts it: a success whose price was unknown
            func.sum(
                case(
                    (
                        and_(
                            Attempt.outcome == AttemptOutcome.SUCCEEDED.value,
                            Attempt.cost_usd.is_(None),
                        ),
                        1,
                    ),
                    else_=0,
                )
            ),
        )
        .where(_calls_filter())
        .group_by(Attempt.provider, Attempt.model)
    )
    return [(p, m, int(a), int(b), Decimal(c), int(u or 0)) for p, m, a, b, c, u in conn.execute(q)]


def cache_hits(conn: Connection) -> list[tuple[str, int, Decimal]]:
    """(model, hits, USD saved) from cache-hit attempts."""
    q = (
        select(Attempt.model, func.count(), func.coalesce(func.sum(Attempt.saved_usd), 0))
        .where(Attempt.outcome == AttemptOutcome.CACHE_HIT.value)
        .group_by(Attempt.model)
    )
    return [(m, int(n), Decimal(s)) for m, n, s in conn.execute(q)]


def retries_and_fallbacks(conn: Connection) -> list[tuple[str, int, int]]:
    """(provider, retries, fallbacks): an attempt after another one of the same job is a retry
    when it used the same deployment, a fallback when it moved to a different one."""
    prev = (
        func.lag(Attempt.deployment)
        .over(partition_by=Attempt.job_id, order_by=Attempt.attempt_no)
        .label("prev")
    )
    inner = (
        select(Attempt.provider, Attempt.deployment, prev)
        .where(Attempt.outcome != AttemptOutcome.CACHE_HIT.value)
        .subquery()
    )
    q = select(
        inner.c.provider,
        func.sum(case((inner.c.prev == inner.c.deployment, 1), else_=0)),
        func.sum(
            case((and_(inner.c.prev.is_not(None), inner.c.prev != inner.c.deployment), 1), else_=0)
        ),
    ).group_by(inner.c.provider)
    return [(p, int(r or 0), int(f or 0)) for p, r, f in conn.execute(q)]


def jobs_by_state(conn: Connection) -> dict[str, int]:
    counts = {s.value: 0 for s in JobState}
    for state, n in conn.execute(select(Job.state, func.count()).group_by(Job.state)):
        counts[state] = int(n)
    return counts
