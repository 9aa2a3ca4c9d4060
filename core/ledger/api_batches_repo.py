"""OpenAI batch objects of `llmq serve` (`api_batches`), each over one ledger batch.

Owns: the `api_batches` table: insert, read (always within one tenant), list, and the state
changes of the batch object (cancelling, the final status with its frozen counts and files);
and `live_counts`, the one cheap read of a batch's jobs that a poll needs. The jobs themselves
stay in `batches`/`jobs`, written by `batches_repo` and the workers. Must not: commit (callers
pass an open Session), write `jobs`, or know about HTTP.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.ledger.files_repo import page
from core.ledger.models import ApiBatch, Job

FINAL = frozenset({"completed", "failed", "cancelled", "expired"})


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


@dataclass(frozen=True)
class LiveCounts:
    """A running batch at a glance, from one scan of its jobs (what a poll needs)."""

    counts: dict[str, int]  # job state -> jobs (states without jobs are absent)
    prompt_tokens: int  # of the jobs' final attempts
    completion_tokens: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def terminal(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("succeeded", "failed", "cancelled"))


def live_counts(session: Session, batch_id: uuid.UUID) -> LiveCounts:
    """Jobs by state and their tokens, in one GROUP BY over the batch's jobs (read only)."""
    rows = session.execute(
        select(
            Job.state,
            func.count(),
            func.coalesce(func.sum(Job.prompt_tokens), 0),
            func.coalesce(func.sum(Job.completion_tokens), 0),
        )
        .where(Job.batch_id == batch_id)
        .group_by(Job.state)
    ).all()
    return LiveCounts(
        {state: int(n) for state, n, _, _ in rows},
        sum(int(p) for _, _, p, _ in rows),
        sum(int(c) for _, _, _, c in rows),
    )


def insert(session: Session, row: ApiBatch) -> ApiBatch:
    session.add(row)
    session.flush()
    return row


def get(session: Session, tenant: str, api_id: str) -> ApiBatch | None:
    """The tenant's batch object, or None: another tenant's batch does not exist."""
    return session.scalar(select(ApiBatch).where(ApiBatch.id == api_id, ApiBatch.tenant == tenant))


def lock(session: Session, api_id: str) -> ApiBatch | None:
    """Lock the row for finalizing; None if another replica holds it (SKIP LOCKED).
    SQLite has no row locks; its single writer serialises instead."""
    stmt = select(ApiBatch).where(ApiBatch.id == api_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalar(stmt.execution_options(populate_existing=True))


def list_batches(
    session: Session, tenant: str, limit: int, after: str | None
) -> tuple[list[ApiBatch], bool]:
    """The tenant's batch objects, newest first, after the cursor id; (page, has_more)."""
    return page(session, ApiBatch, [ApiBatch.tenant == tenant], limit, after)


def mark_cancelling(session: Session, api_id: str, now: datetime) -> bool:
    """in_progress -> cancelling (conditional); False if it was already past that."""
    result = session.execute(
        update(ApiBatch)
        .where(ApiBatch.id == api_id, ApiBatch.status.in_(("validating", "in_progress")))
        .values(status="cancelling", cancelling_at=now),
        execution_options={"synchronize_session": False},
    )
    return bool(result.rowcount)


def mark_cancelling_by_ledger_batch(session: Session, batch_id: uuid.UUID, now: datetime) -> bool:
    """The API batch object over ledger batch `batch_id`, if any, in_progress -> cancelling:
    a cancel from elsewhere (the dashboard) ends it `cancelled`, as the API's own cancel does."""
    result = session.execute(
        update(ApiBatch)
        .where(ApiBatch.batch_id == batch_id, ApiBatch.status.in_(("validating", "in_progress")))
        .values(status="cancelling", cancelling_at=now),
        execution_options={"synchronize_session": False},
    )
    return bool(result.rowcount)


def finalize(session: Session, row: ApiBatch, status: str, now: datetime, **values: Any) -> None:
    """Store the final `status` on a locked row, with `values` (final, file ids) and the
    matching `<status>_at` timestamp."""
    assert status in FINAL, status
    row.status = status
    row.finalizing_at = row.finalizing_at or now
    setattr(row, f"{status}_at", now)
    for key, value in values.items():
        setattr(row, key, value)
    session.flush()
