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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import islice

from sqlalchemy.orm import Session, sessionmaker

from core.jsonl import InputError
from core.ledger import batch_submit_repo
from core.ledger.batch_submit_repo import NewBatch
from core.ledger.db import session_scope
from core.publish import JOBS_PER_MESSAGE, EnqueueError, enqueue_job_ids, priority_for_batch
from schemas.job import JobSpec, JobState

log = logging.getLogger(__name__)

INSERT_CHUNK = 2000  # specs parsed, keyed and inserted at a time by `store_stream_and_enqueue`
PUBLISH_CHUNK = 5000  # job ids read back and published at a time
# Jobs stored for a feeder to publish (publish=False) count as sent this far ahead, so the
# sweeper leaves them alone; the feeder renews it (`llmq.embedded_feed`).
UNSENT_HOLD = timedelta(hours=1)
KeysFor = Callable[[Sequence[JobSpec]], Sequence[str | None]]


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
        return enqueue_job_ids(
            broker_url,
            job_ids,
            priority=priority_for_batch(len(job_ids)),
            per_message=JOBS_PER_MESSAGE,
        )
    except EnqueueError as exc:
        unsent = list(job_ids[exc.sent :])
        try:
            with session_scope(sessions) as session:
                batch_submit_repo.clear_enqueued(session, batch_id, unsent)
        except Exception:  # noqa: BLE001 - the sweeper's age rule still catches them later
            log.warning("could not mark %d unsent jobs of batch %s", len(unsent), batch_id)
        raise EnqueueFailed(batch_id, len(job_ids), exc.sent, exc) from exc


def store_stream_and_enqueue(  # noqa: PLR0913 - the stream, its count and where it goes
    sessions: sessionmaker[Session],
    broker_url: str,
    specs: Iterable[JobSpec],
    total: int | None,
    batch: NewBatch,
    keys_for: KeysFor,
    *,
    publish: bool = True,
) -> SubmitResult:
    """`store_and_enqueue` for a large, already validated file, in memory flat in its length.

    `specs` streams the file (`core.jsonl.iter_file`, which raises InputError after the last
    line when any line was bad); chunks of INSERT_CHUNK are keyed (`keys_for`) and inserted in
    ONE transaction, so a bad line, or a count other than `total` when the caller validated
    the file first, rolls everything back. `total` None: the batch's job count is set from
    what was inserted, in the same transaction.
    After the commit, ids are read back and published page by page (unless `publish` is
    False: the caller feeds them, see `llmq.embedded_feed`).

    Raises:
        InputError: the file no longer matches its validation; nothing was written.
        EnqueueFailed: committed, but publishing failed part-way (see the module docstring).
    """
    now = datetime.now(UTC)
    hold = None if publish else now + UNSENT_HOLD
    t0 = time.perf_counter()
    with session_scope(sessions) as session:
        batch_id = batch_submit_repo.insert_batch(session, batch, total or 0, now)
        stored = 0
        for chunk in _chunks(specs, INSERT_CHUNK):
            batch_submit_repo.insert_jobs(
                session, batch_id, batch, chunk, stored + 1, now, keys_for(chunk), hold
            )
            stored += len(chunk)
        if total is None:
            total = stored
            batch_submit_repo.set_total_jobs(session, batch_id, stored)
        elif stored != total:
            raise InputError(
                [f"the file changed while it was submitted ({total} job lines, now {stored})"],
                batch.source,
            )
    t1 = time.perf_counter()
    state = JobState.DEFERRED if batch.nightly else JobState.QUEUED
    result = SubmitResult(batch_id, total, 0, state.value, {"insert_s": t1 - t0})
    if publish and not batch.nightly:
        result.enqueued = publish_batch(sessions, broker_url, batch_id, total)
    result.timings["enqueue_s"] = time.perf_counter() - t1
    return result


def publish_batch(
    sessions: sessionmaker[Session], broker_url: str, batch_id: uuid.UUID, total: int
) -> int:
    """Publish every job of a just-committed batch in input order, PUBLISH_CHUNK ids at a time.

    On a broker failure the jobs not sent are marked never-sent and EnqueueFailed is raised."""
    sent, priority = 0, priority_for_batch(total)
    for after_line, page in _pages(
        sessions, partial(batch_submit_repo.job_ids_after, batch_id=batch_id)
    ):
        try:
            ids = [jid for _, jid in page]
            sent += enqueue_job_ids(
                broker_url, ids, priority=priority, per_message=JOBS_PER_MESSAGE
            )
        except EnqueueError as exc:
            done = page[exc.sent - 1][0] if exc.sent else after_line
            try:
                with session_scope(sessions) as session:
                    batch_submit_repo.clear_enqueued(session, batch_id, after_line_no=done)
            except Exception:  # noqa: BLE001 - the sweeper's age rule still catches them later
                log.warning("could not mark the unsent jobs of batch %s", batch_id)
            raise EnqueueFailed(batch_id, total, sent + exc.sent, exc) from exc
    return sent


def republish_unfinished(
    sessions: sessionmaker[Session], broker_url: str, batch_id: uuid.UUID
) -> int:
    """Publish the batch's queued and running jobs again, page by page; returns how many.

    For a run interrupted in one process (`llmq run --resume`): its messages died with it,
    the ledger kept the jobs. A job that finished since is not among them, and a duplicate
    message finds nothing to claim, so no job runs (or is paid) twice."""
    sent = 0
    read = partial(batch_submit_repo.unfinished_job_ids, batch_id=batch_id)
    for _, page in _pages(sessions, read):
        try:
            ids = [jid for _, jid in page]
            sent += enqueue_job_ids(broker_url, ids, per_message=JOBS_PER_MESSAGE)
        except EnqueueError as exc:  # still queued in the ledger: the sweeper sends them
            raise EnqueueFailed(batch_id, sent + len(page), sent + exc.sent, exc) from exc
    return sent


def _pages(
    sessions: sessionmaker[Session], read: Callable[..., list[tuple[int, uuid.UUID]]]
) -> Iterator[tuple[int, list[tuple[int, uuid.UUID]]]]:
    """(line_no before the page, page) for each page of (line_no, job id) that `read` returns
    after a line number, PUBLISH_CHUNK at a time, each read in its own short transaction."""
    after_line = 0
    while True:
        with session_scope(sessions) as session:
            page = read(session, after_line_no=after_line, limit=PUBLISH_CHUNK)
        if not page:
            return
        yield after_line, page
        after_line = page[-1][0]


def _chunks(items: Iterable[JobSpec], size: int) -> Iterator[list[JobSpec]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
