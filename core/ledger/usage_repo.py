"""Usage reports from the attempts ledger: what `llmq usage` prints.

Owns: the read-only usage query (tokens by class, cost, attempts, cache hits, saved cost, and
`spent_unknown`) grouped by tenant, provider, model, deployment, UTC day and lane. Must not:
write anything, or read the budget windows (those are quota_repo's; both are kept in step by
settle, so they agree).

The tenant is the one each attempt recorded when it was made (issue 19), never the job's
current one: a re-assignment (e.g. by a nightly run) leaves past spend where it was.
`spent_unknown`: attempts the sweeper closed as lost (their worker died mid-call), booked on
the quota at their reservation because the provider may have billed them; a late finish turns
them into ordinary attempts with their real cost. `lane` is the attempt's (issue 18: sync or
batch; NULL = sync).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from core.ledger.models import Attempt

ZERO = Decimal(0)

USAGE_DIMENSIONS = ("tenant", "provider", "model", "deployment", "day", "lane")


@dataclass(frozen=True)
class UsageRow:
    """Attempts ledger totals for one group (`group` maps each `--by` dimension to its value)."""

    group: dict[str, str]
    attempts: int
    succeeded: int
    failed: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal  # sum of known costs
    unpriced: int  # succeeded calls whose price was unknown (quota booked their reserved USD)
    saved_usd: Decimal  # cost avoided by cache hits
    cached_tokens: int = 0  # of prompt_tokens
    cache_write_tokens: int = 0  # of prompt_tokens
    reasoning_tokens: int = 0  # of completion_tokens
    lost: int = 0  # attempts whose worker died mid-call (counted in `failed` too)
    spent_unknown_usd: Decimal = ZERO  # their reservations, booked as spent on the quota
    spent_unknown_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _day_column(session: Session):  # type: ignore[no-untyped-def]
    """The UTC day of `attempts.started_at` as 'YYYY-MM-DD' on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Attempt.started_at), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", Attempt.started_at)  # SQLite keeps the UTC wall clock


def _count_if(condition) -> object:  # type: ignore[no-untyped-def]
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def usage_report(
    session: Session,
    since: datetime,
    tenant: str | None = None,
    by: Sequence[str] = (),
    provider: str | None = None,
) -> list[UsageRow]:
    """Tokens, cost, attempts, cache hits and saved cost from the attempts ledger, for attempts
    started at or after `since` (of one tenant and/or provider when given), grouped by `by`
    (a subset of USAGE_DIMENSIONS, in order)."""
    unknown = [d for d in by if d not in USAGE_DIMENSIONS]
    if unknown:
        raise ValueError(f"cannot group by {unknown}; choose from {', '.join(USAGE_DIMENSIONS)}")
    lost = Attempt.outcome == "lost"
    dims = {
        "tenant": Attempt.tenant,
        "provider": Attempt.provider,
        "model": Attempt.model,
        "deployment": Attempt.deployment,
        "day": _day_column(session),
        "lane": func.coalesce(Attempt.lane, "sync"),  # issue 18: sync or batch
    }
    groups = [dims[d].label(d) for d in by]
    stmt = (
        select(
            *groups,
            func.count().label("attempts"),
            _count_if(Attempt.outcome == "succeeded").label("succeeded"),
            _count_if(Attempt.outcome.in_(("failed", "lost"))).label("failed"),
            _count_if(Attempt.outcome == "cache_hit").label("cache_hits"),
            func.coalesce(func.sum(Attempt.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(Attempt.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(Attempt.cost_usd), ZERO).label("cost_usd"),
            _count_if(and_(Attempt.outcome == "succeeded", Attempt.cost_usd.is_(None))).label(
                "unpriced"
            ),
            func.coalesce(func.sum(Attempt.saved_usd), ZERO).label("saved_usd"),
            func.coalesce(func.sum(Attempt.cached_tokens), 0).label("cached_tokens"),
            func.coalesce(func.sum(Attempt.cache_write_tokens), 0).label("cache_write_tokens"),
            func.coalesce(func.sum(Attempt.reasoning_tokens), 0).label("reasoning_tokens"),
            _count_if(lost).label("lost"),
            func.coalesce(func.sum(case((lost, Attempt.reserved_usd))), ZERO).label("unknown_usd"),
            func.coalesce(func.sum(case((lost, Attempt.reserved_tokens))), 0).label("unknown_tok"),
        )
        .select_from(Attempt)
        .where(Attempt.started_at >= since)
    )
    if tenant is not None:
        stmt = stmt.where(Attempt.tenant == tenant)
    if provider is not None:
        stmt = stmt.where(Attempt.provider == provider)
    if groups:
        stmt = stmt.group_by(*groups).order_by(*groups)
    rows = session.execute(stmt).all()
    return [_usage_row(r, by) for r in rows if r.attempts]


def _usage_row(r, by: Sequence[str]) -> UsageRow:  # type: ignore[no-untyped-def]
    return UsageRow(
        group={d: str(getattr(r, d)) for d in by},
        attempts=int(r.attempts),
        succeeded=int(r.succeeded),
        failed=int(r.failed),
        cache_hits=int(r.cache_hits),
        prompt_tokens=int(r.prompt_tokens),
        completion_tokens=int(r.completion_tokens),
        cost_usd=Decimal(r.cost_usd),
        unpriced=int(r.unpriced),
        saved_usd=Decimal(r.saved_usd),
        cached_tokens=int(r.cached_tokens),
        cache_write_tokens=int(r.cache_write_tokens),
        reasoning_tokens=int(r.reasoning_tokens),
        lost=int(r.lost),
        spent_unknown_usd=Decimal(r.unknown_usd),
        spent_unknown_tokens=int(r.unknown_tok),
    )


def lanes_since(session: Session, since: datetime, tenant: str | None = None) -> dict[str, Any]:
    """Per lane (sync, batch): attempts, cost and the USD the batch lane saved (issue 18)."""
    from core.ledger.lanes_reads_repo import lane_usage, lanes_json

    where = [Attempt.started_at >= since]
    if tenant is not None:
        where.append(Attempt.tenant == tenant)  # issue 19: the tenant the call charged
    return lanes_json(lane_usage(session, *where))
