"""The dashboard's time-range reads over the attempts ledger: spend and tokens per UTC day
(by provider or model), and each deployment's calls and latency over a recent window.

Owns: these read-only aggregates. They count as `llmq usage` counts (`usage_repo`): cost is
the sum of known attempt costs, tokens are prompt + completion over every attempt, savings
are the cache hits' `saved_usd`, days are UTC days of `started_at`; only the grouping differs.
Both filter `attempts.started_at` to a range first, which the BRIN index
`ix_attempts_started_at_brin` answers without reading older rows; a tenant filter reads the
tenant each attempt charged (issue 19), so a re-assigned job's past spend stays where it was.
Postgres only (percentiles).
Must not: write anything, or open or commit transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ledger.models import Attempt
from core.money import as_decimal
from schemas.job import AttemptOutcome

SPEND_DIMENSIONS = ("provider", "model")


@dataclass(frozen=True)
class SpendCell:
    """One (UTC day, provider or model) cell of the spend chart. Money in USD."""

    day: date
    key: str
    attempts: int
    tokens: int
    cost_usd: Decimal
    cache_hits: int
    saved_usd: Decimal


@dataclass(frozen=True)
class DeploymentCalls:
    """A deployment's finished provider calls since a time, from the ledger."""

    deployment: str
    calls: int
    succeeded: int
    failed: int
    p50_ms: float | None  # successful calls' latency percentiles, milliseconds
    p95_ms: float | None

    @property
    def success_rate(self) -> float | None:
        judged = self.succeeded + self.failed
        return self.succeeded / judged if judged else None


def spend_by_day(
    session: Session, start: datetime, end: datetime, dim: str, tenant: str | None = None
) -> list[SpendCell]:
    """Cells for attempts started in [start, end), grouped by UTC day and `dim`."""
    if dim not in SPEND_DIMENSIONS:
        raise ValueError(f"cannot group spend by {dim!r}; choose from {SPEND_DIMENSIONS}")
    key = Attempt.provider if dim == "provider" else Attempt.model
    day = func.date(func.timezone("UTC", Attempt.started_at)).label("day")
    hit = Attempt.outcome == AttemptOutcome.CACHE_HIT.value
    stmt = (
        select(
            day,
            key.label("key"),
            func.count(),
            func.coalesce(func.sum(Attempt.prompt_tokens + Attempt.completion_tokens), 0),
            func.coalesce(func.sum(Attempt.cost_usd), 0),
            func.count().filter(hit),
            func.coalesce(func.sum(Attempt.saved_usd), 0),
        )
        .where(Attempt.started_at >= start, Attempt.started_at < end)
        .group_by(day, key)
        .order_by(day, key)
    )
    if tenant is not None:
        stmt = stmt.where(Attempt.tenant == tenant)
    return [
        SpendCell(d, str(k), int(n), int(tok), as_decimal(c), int(h), as_decimal(s))
        for d, k, n, tok, c, h, s in session.execute(stmt)
    ]


@dataclass(frozen=True)
class SpendPart:
    """Cell figures of one (UTC day, tenant, provider, model): the finest grain the spend
    chart groups by, so any of its cells is an exact sum of parts (counts and NUMERIC sums)."""

    day: date
    tenant: str
    provider: str
    model: str
    attempts: int
    tokens: int
    cost_usd: Decimal
    cache_hits: int
    saved_usd: Decimal


def spend_parts(session: Session, start: datetime, end: datetime) -> list[SpendPart]:
    """`spend_by_day`'s figures for attempts started in [start, end), grouped by UTC day,
    tenant, provider and model: one range scan that serves every tenant filter and dimension."""
    day = func.date(func.timezone("UTC", Attempt.started_at)).label("day")
    hit = Attempt.outcome == AttemptOutcome.CACHE_HIT.value
    groups = (day, Attempt.tenant, Attempt.provider, Attempt.model)
    stmt = (
        select(
            *groups,
            func.count(),
            func.coalesce(func.sum(Attempt.prompt_tokens + Attempt.completion_tokens), 0),
            func.coalesce(func.sum(Attempt.cost_usd), 0),
            func.count().filter(hit),
            func.coalesce(func.sum(Attempt.saved_usd), 0),
        )
        .where(Attempt.started_at >= start, Attempt.started_at < end)
        .group_by(*groups)
    )
    return [
        SpendPart(d, t, p, m, int(n), int(tok), as_decimal(c), int(h), as_decimal(s))
        for d, t, p, m, n, tok, c, h, s in session.execute(stmt)
    ]


def deployment_calls(session: Session, since: datetime) -> list[DeploymentCalls]:
    """Per deployment, provider calls started since `since` and finished: counts and the
    p50/p95 latency of the successful ones (cache hits and calls in flight excluded)."""
    ok = Attempt.outcome == AttemptOutcome.SUCCEEDED.value
    failed = Attempt.outcome.in_((AttemptOutcome.FAILED.value, AttemptOutcome.LOST.value))
    finished = (
        AttemptOutcome.SUCCEEDED.value,
        AttemptOutcome.FAILED.value,
        AttemptOutcome.LOST.value,
        AttemptOutcome.SUPERSEDED.value,
    )
    stmt = (
        select(
            Attempt.deployment,
            func.count(),
            func.count().filter(ok),
            func.count().filter(failed),
            func.percentile_cont(0.5).within_group(Attempt.latency_ms).filter(ok),
            func.percentile_cont(0.95).within_group(Attempt.latency_ms).filter(ok),
        )
        .where(Attempt.started_at >= since, Attempt.outcome.in_(finished))
        .group_by(Attempt.deployment)
    )
    return [
        DeploymentCalls(dep, int(n), int(s), int(f), _ms(p50), _ms(p95))
        for dep, n, s, f, p50, p95 in session.execute(stmt)
    ]


def _ms(value: float | None) -> float | None:
    return None if value is None else float(value)
