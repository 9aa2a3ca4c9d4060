"""The nightly report's figures, read from the ledger: jobs by state and source, attempts,
tokens and cost by provider and model, failures by reason, the costliest jobs, inbox files.

Owns: the read-only queries behind `RunFigures` and the figure records they return
(workers/nightly/report.py turns them into the report). Must not: write anything, open or
commit transactions (callers pass a session inside `session_scope`), or read the clock
(callers pass the run's start). The run's rows and the state changes that pick up work are
core/ledger/nightly_repo.py's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ledger.lanes_reads_repo import lane_usage, lanes_json
from core.ledger.models import Attempt, Batch, InboxFile, Job, NightlyRunJob
from core.money import as_decimal
from schemas.job import JobState

_jobs = Job.__table__
_links = NightlyRunJob.__table__


@dataclass(frozen=True)
class UsageFigures:
    """Attempts ledger totals for one (provider, model), defined exactly as `llmq usage`."""

    provider: str
    model: str
    attempts: int
    succeeded: int
    failed: int  # outcomes failed + lost
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal  # known costs only
    unpriced: int  # succeeded calls with no known price


@dataclass(frozen=True)
class JobCost:
    job_id: str
    batch_id: str
    custom_id: str
    model: str
    provider: str | None
    state: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True)
class InboxEntry:
    name: str
    state: str  # ingested | rejected
    batch_id: str | None
    jobs: int


@dataclass(frozen=True)
class RunFigures:
    """Everything the report says about one run's jobs, from the ledger."""

    by_state: Mapping[str, int]
    by_source: Mapping[str, int]
    usage: Sequence[UsageFigures]
    failed_jobs_by_reason: Mapping[str, int]
    failed_attempts_by_reason: Mapping[str, int]
    costliest: Sequence[JobCost]
    inbox: Sequence[InboxEntry] = field(default_factory=list)
    lanes: Mapping[str, Any] = field(default_factory=dict)  # issue 18: lanes_json(...)


def run_figures(
    session: Session, run_id: int, since: datetime, tenant: str | None = None
) -> RunFigures:
    """The report's figures for the run's jobs. Tokens and cost: their attempts started at or
    after `since` (the run's start), with `llmq usage`'s definitions; with `tenant`, only the
    attempts charged to it (issue 19: the tenant each attempt recorded, as `llmq usage`)."""
    linked = select(_links.c.job_id).where(_links.c.run_id == run_id)
    scope = _scope(linked, since, tenant)
    return RunFigures(
        by_state=_grouped(session, _jobs.c.state, _jobs.c.id.in_(linked)),
        by_source=dict(
            session.execute(
                select(_links.c.source, func.count())
                .where(_links.c.run_id == run_id)
                .group_by(_links.c.source)
            ).all()
        ),
        usage=_usage(session, scope),
        failed_jobs_by_reason=_grouped(
            session,
            _jobs.c.error["type"].as_string(),
            _jobs.c.id.in_(linked) & (_jobs.c.state == JobState.FAILED.value),
        ),
        failed_attempts_by_reason=_failed_attempts(session, scope),
        costliest=_costliest(session, scope),
        inbox=_inbox(session, run_id),
        lanes=lanes_json(
            lane_usage(session, Attempt.job_id.in_(linked), Attempt.started_at >= since)
        ),
    )


def _grouped(session: Session, column: Any, where: Any) -> dict[str, int]:
    stmt = select(column, func.count()).select_from(_jobs).where(where).group_by(column)
    return {str(k): int(n) for k, n in session.execute(stmt)}


def _scope(linked: Any, since: datetime, tenant: str | None) -> Any:
    """The attempts the figures count: the run's jobs', since `since`, charged to `tenant`."""
    where = Attempt.job_id.in_(linked) & (Attempt.started_at >= since)
    return where if tenant is None else where & (Attempt.tenant == tenant)


def _usage(session: Session, scope: Any) -> list[UsageFigures]:
    a = Attempt
    stmt = (
        select(
            a.provider,
            a.model,
            func.count(),
            func.count().filter(a.outcome == "succeeded"),
            func.count().filter(a.outcome.in_(("failed", "lost"))),
            func.count().filter(a.outcome == "cache_hit"),
            func.coalesce(func.sum(a.prompt_tokens), 0),
            func.coalesce(func.sum(a.completion_tokens), 0),
            func.coalesce(func.sum(a.cost_usd), 0),
            func.count().filter(a.outcome == "succeeded", a.cost_usd.is_(None)),
        )
        .where(scope)
        .group_by(a.provider, a.model)
        .order_by(a.provider, a.model)
    )
    return [
        UsageFigures(
            p, m, int(n), int(ok), int(bad), int(hit), int(pt), int(ct), as_decimal(c or 0), int(u)
        )
        for p, m, n, ok, bad, hit, pt, ct, c, u in session.execute(stmt)
    ]


def _failed_attempts(session: Session, scope: Any) -> dict[str, int]:
    a = Attempt
    kind = func.coalesce(a.error_kind, "unknown")
    stmt = select(kind, func.count()).where(scope, a.outcome.in_(("failed", "lost"))).group_by(kind)
    return {str(k): int(n) for k, n in session.execute(stmt)}


def _costliest(session: Session, scope: Any, limit: int = 10) -> list[JobCost]:
    a = Attempt
    per_job = (
        select(
            a.job_id,
            func.coalesce(func.sum(a.cost_usd), 0).label("cost"),
            func.coalesce(func.sum(a.prompt_tokens), 0).label("pt"),
            func.coalesce(func.sum(a.completion_tokens), 0).label("ct"),
        )
        .where(scope)
        .group_by(a.job_id)
        .subquery()
    )
    stmt = (
        select(
            _jobs.c.id,
            _jobs.c.batch_id,
            _jobs.c.custom_id,
            _jobs.c.model,
            _jobs.c.provider,
            _jobs.c.state,
            per_job.c.pt,
            per_job.c.ct,
            per_job.c.cost,
        )  # fmt: skip
        .join(per_job, per_job.c.job_id == _jobs.c.id)
        .order_by(per_job.c.cost.desc(), (per_job.c.pt + per_job.c.ct).desc(), _jobs.c.id)
        .limit(limit)
    )
    return [
        JobCost(str(j), str(b), cid, m, p, s, int(pt), int(ct), as_decimal(c or 0))
        for j, b, cid, m, p, s, pt, ct, c in session.execute(stmt)
    ]


def _inbox(session: Session, run_id: int) -> list[InboxEntry]:
    stmt = (
        select(InboxFile.name, InboxFile.state, InboxFile.batch_id, Batch.total_jobs)
        .outerjoin(Batch, Batch.id == InboxFile.batch_id)
        .where(InboxFile.run_id == run_id)
        .order_by(InboxFile.seen_at, InboxFile.name)
    )
    return [
        InboxEntry(name, state, str(b) if b else None, int(n or 0))
        for name, state, b, n in session.execute(stmt)
    ]
