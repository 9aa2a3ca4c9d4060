"""The state changes a user asks of a batch: cancel it, resume its parked jobs.

Owns: these writes on `batches` and `jobs` (never the `attempts` table, which only the workers
write). Must not: commit or open transactions (every function takes an open Session), publish
messages (the producer enqueues the resumed ids after commit), or import provider code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.ledger.batch_reads_repo import PARKED
from core.ledger.models import Batch, Job
from schemas.job import BatchState, JobState

CANCELLABLE = (JobState.QUEUED.value, *PARKED)
_NO_SYNC = {"synchronize_session": False}  # bulk UPDATEs: no ORM objects to refresh


@dataclass(frozen=True)
class CancelResult:
    cancelled: int  # jobs moved to cancelled now
    running: int  # jobs still running; they finish (their results are kept)


def cancel_batch(session: Session, batch_id: uuid.UUID, now: datetime) -> CancelResult | None:
    """Queued, deferred and parked jobs become cancelled; running ones are left to finish.

    A worker's claim is a conditional UPDATE on `queued`, so a job is either claimed first
    (and finishes) or cancelled first (and the claim finds nothing): row locks serialise them.
    """
    batch = session.get(Batch, batch_id, with_for_update=True)
    if batch is None:
        return None
    result = session.execute(
        update(Job)
        .where(Job.batch_id == batch_id, Job.state.in_(CANCELLABLE))
        .values(state=JobState.CANCELLED.value, finished_at=now, lease_until=None),
        execution_options=_NO_SYNC,
    )
    batch.state = BatchState.CANCELLED.value
    running = session.scalar(
        select(func.count()).where(Job.batch_id == batch_id, Job.state == JobState.RUNNING.value)
    )
    return CancelResult(result.rowcount or 0, int(running or 0))


def resume_batch(session: Session, batch_id: uuid.UUID, now: datetime) -> list[uuid.UUID] | None:
    """Parked (`quota_exceeded`) and `deferred` jobs go back to `queued`; returns their ids
    for the caller to enqueue after commit. A cancelled batch stays cancelled (its parked jobs
    were cancelled with it); None when the batch does not exist."""
    batch = session.get(Batch, batch_id, with_for_update=True)
    if batch is None:
        return None
    ids = session.scalars(
        update(Job)
        .where(Job.batch_id == batch_id, Job.state.in_(PARKED))
        .values(state=JobState.QUEUED.value, not_before=None, error=None, enqueued_at=now)
        .returning(Job.id),
        execution_options=_NO_SYNC,
    ).all()
    if ids and batch.state != BatchState.CANCELLED:
        batch.state = BatchState.ACTIVE.value
        batch.finished_at = None
    return list(ids)
