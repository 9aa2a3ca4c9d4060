"""The dashboard's batch reads: the batch list, a batch's cost per provider and model, its
slowest and costliest jobs, and who owns a batch or a job.

Owns: these read-only queries; a batch's counts, tokens and cost come from
`batch_reads_repo.batch_status` (what `llmq status` prints), so the two always agree. Every
query is bounded (a page of batches, the top N jobs) and walks an index: batches by
(tenant, created_at) or created_at, jobs by (batch_id, line_no), attempts by their primary key
(job_id, attempt_no). Must not: write anything, open or commit transactions, or return prompt
or result text (the job page shows the error record and the attempt rows only).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ledger.batch_reads_repo import TERMINAL
from core.ledger.models import Attempt, Batch, Job
from core.money import as_decimal
from schemas.job import BatchState, JobState

ZERO = Decimal(0)


@dataclass(frozen=True)
class BatchListRow:
    """One line of the batch list. Money in USD."""

    id: uuid.UUID
    name: str | None
    tenant: str
    state: str  # derived as `llmq status` derives it: cancelled / done / active
    total: int
    done: int  # terminal jobs
    failed: int
    cost_usd: Decimal
    created_at: datetime


@dataclass(frozen=True)
class ModelCost:
    provider: str
    model: str  # the provider's model id
    attempts: int
    cost_usd: Decimal


@dataclass(frozen=True)
class JobFigure:
    """A job ranked by time or cost: its wall time in calls and waits, and its spend."""

    id: uuid.UUID
    custom_id: str
    state: str
    attempts: int
    latency_ms: int  # sum over its attempts
    waited_ms: int  # backoff before its attempts
    cost_usd: Decimal


def newest_batches(session: Session, tenant: str | None, limit: int = 20) -> list[Batch]:
    """The newest `limit` batches of `tenant` (None: every tenant)."""
    stmt = select(Batch).order_by(Batch.created_at.desc(), Batch.id).limit(limit)
    if tenant is not None:
        stmt = stmt.where(Batch.tenant == tenant)
    return list(session.scalars(stmt).all())


def recent_tenants(session: Session, scan: int = 200, limit: int = 32) -> list[str]:
    """Up to `limit` tenants of the newest `scan` batches, most recent first (by the
    created_at index): whose batch lists a viewer is likely to open."""
    rows = session.scalars(select(Batch.tenant).order_by(Batch.created_at.desc()).limit(scan))
    return list(dict.fromkeys(rows))[:limit]


def job_counts(
    session: Session, ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int, datetime | None]]:
    """(terminal jobs, failed jobs, last finish) per batch: the jobs table only."""
    rows = session.execute(
        select(
            Job.batch_id,
            func.count().filter(Job.state.in_(TERMINAL)),
            func.count().filter(Job.state == JobState.FAILED.value),
            func.max(Job.finished_at),
        )
        .where(Job.batch_id.in_(ids))
        .group_by(Job.batch_id)
    )
    return {bid: (int(done), int(failed), last) for bid, done, failed, last in rows}


def attempt_costs(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    """Sum of known attempt costs per batch (as `llmq status` sums them)."""
    if not ids:
        return {}
    rows = session.execute(
        select(Job.batch_id, func.coalesce(func.sum(Attempt.cost_usd), 0))
        .join(Attempt, Attempt.job_id == Job.id)
        .where(Job.batch_id.in_(ids))
        .group_by(Job.batch_id)
    )
    return {bid: as_decimal(c) for bid, c in rows}


def list_row(b: Batch, done: int, failed: int, cost: Decimal) -> BatchListRow:
    """A list line, its state derived as `batch_reads_repo.batch_status` derives it."""
    if b.state == BatchState.CANCELLED:
        state = BatchState.CANCELLED.value
    elif done == b.total_jobs:
        state = BatchState.DONE.value
    else:
        state = BatchState.ACTIVE.value
    return BatchListRow(
        b.id, b.name, b.tenant, state, b.total_jobs, done, failed, cost, b.created_at
    )


def last_finished(session: Session, batch_id: uuid.UUID) -> datetime | None:
    return session.scalar(select(func.max(Job.finished_at)).where(Job.batch_id == batch_id))


def batch_tenant(session: Session, batch_id: uuid.UUID) -> str | None:
    return session.scalar(select(Batch.tenant).where(Batch.id == batch_id))


def job_tenant(session: Session, job_id: uuid.UUID) -> str | None:
    return session.scalar(select(Job.tenant).where(Job.id == job_id))


def cost_by_model(session: Session, batch_id: uuid.UUID) -> list[ModelCost]:
    """Attempts and cost per (provider, model) over the batch's attempts, costliest first."""
    cost = func.coalesce(func.sum(Attempt.cost_usd), 0)
    rows = session.execute(
        select(Attempt.provider, Attempt.model, func.count(), cost)
        .join(Job, Job.id == Attempt.job_id)
        .where(Job.batch_id == batch_id)
        .group_by(Attempt.provider, Attempt.model)
        .order_by(cost.desc(), Attempt.provider, Attempt.model)
    )
    return [ModelCost(p, m, int(n), as_decimal(c)) for p, m, n, c in rows]


def top_jobs(session: Session, batch_id: uuid.UUID, by: str, limit: int = 10) -> list[JobFigure]:
    """The batch's `limit` slowest (`by="time"`: call latency plus backoff waits) or costliest
    (`by="cost"`) jobs, from their attempt rows."""
    latency = func.coalesce(func.sum(Attempt.latency_ms), 0)
    waited = func.coalesce(func.sum(Attempt.waited_ms), 0)
    cost = func.coalesce(func.sum(Attempt.cost_usd), 0)
    order = (latency + waited).desc() if by == "time" else cost.desc()
    rows = session.execute(
        select(Job.id, Job.custom_id, Job.state, Job.attempts, latency, waited, cost)
        .join(Attempt, Attempt.job_id == Job.id)
        .where(Job.batch_id == batch_id)
        .group_by(Job.id, Job.custom_id, Job.state, Job.attempts)
        .order_by(order, Job.id)
        .limit(limit)
    )
    return [
        JobFigure(jid, cid, state, int(n), int(lat), int(w), as_decimal(c))
        for jid, cid, state, n, lat, w, c in rows
    ]
