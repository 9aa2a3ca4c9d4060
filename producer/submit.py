"""Submit a validated batch: one transaction for the batch and all its jobs, then the enqueue.

Owns: the order of operations and what a failed enqueue means. Postgres is the record of which
jobs exist, so the commit comes first; only then are ids published. If publishing fails the
batch is still stored: the unsent jobs are marked never-sent (`enqueued_at` NULL) and the
sweeper publishes them (after its `requeue_after_s`) once the broker is back. `EnqueueFailed`
says exactly that, and the CLI exits 3 rather than 0 so scripts notice.
Must not: write SQL itself (core.ledger.batch_submit_repo does) or import provider code.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from core.ledger import batch_submit_repo
from core.ledger.batch_submit_repo import NewBatch
from core.ledger.db import session_scope
from core.publish import EnqueueError, enqueue_job_ids
from schemas.job import JobSpec, JobState

log = logging.getLogger(__name__)


@dataclass
class SubmitResult:
    """What a submit did, with each phase timed in seconds (parse_s, insert_s, enqueue_s)."""

    batch_id: uuid.UUID
    jobs: int
    enqueued: int  # messages published (0 for a nightly batch)
    state: str  # the jobs' initial JobState: queued, or deferred for --nightly
    timings: dict[str, float] = field(default_factory=dict)


class EnqueueFailed(RuntimeError):
    """The batch is committed but not every job id reached the broker. Nothing is lost."""

    def __init__(self, batch_id: uuid.UUID, jobs: int, sent: int, cause: Exception) -> None:
        self.batch_id, self.jobs, self.sent, self.cause = batch_id, jobs, sent, cause
        super().__init__(
            f"batch {batch_id} IS stored ({jobs} jobs), but only {sent} of them were enqueued "
            f"({cause}). The rest are marked unsent; the sweeper enqueues them when the "
            "broker is reachable again. Do not resubmit the file."
        )


def store_and_enqueue(
    sessions: sessionmaker[Session],
    broker_url: str,
    specs: Sequence[JobSpec],
    batch: NewBatch,
    now: datetime | None = None,
    cache_keys: Sequence[str | None] | None = None,
) -> SubmitResult:
    """Insert the batch and its jobs in one transaction, then enqueue the ids (not for nightly).

    `cache_keys`: one per spec (`core.cache_key.keys_for`), stored on the jobs (issue 11).

    Raises:
        EnqueueFailed: committed, but publishing failed part-way (see the module docstring).
    """
    now = now or datetime.now(UTC)
    t0 = time.perf_counter()
    with session_scope(sessions) as session:
        batch_id, job_ids = batch_submit_repo.insert_batch_with_jobs(
            session, batch, specs, now, cache_keys
        )
    t1 = time.perf_counter()
    state = JobState.DEFERRED if batch.nightly else JobState.QUEUED
    result = SubmitResult(batch_id, len(job_ids), 0, state.value, {"insert_s": t1 - t0})
    if not batch.nightly:
        result.enqueued = publish_or_mark(sessions, broker_url, batch_id, job_ids)
    result.timings["enqueue_s"] = time.perf_counter() - t1
    return result


def publish_or_mark(
    sessions: sessionmaker[Session],
    broker_url: str,
    batch_id: uuid.UUID,
    job_ids: Sequence[uuid.UUID],
) -> int:
    """Publish `job_ids`; on failure mark the unsent ones never-sent and raise EnqueueFailed."""
    try:
        return enqueue_job_ids(broker_url, job_ids)
    except EnqueueError as exc:
        unsent = list(job_ids[exc.sent :])
        try:
            with session_scope(sessions) as session:
                batch_submit_repo.clear_enqueued(session, batch_id, unsent)
        except Exception:  # noqa: BLE001 - the sweeper's age rule still catches them later
            log.warning("could not mark %d unsent jobs of batch %s", len(unsent), batch_id)
        raise EnqueueFailed(batch_id, len(job_ids), exc.sent, exc) from exc
