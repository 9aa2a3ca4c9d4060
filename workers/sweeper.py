"""The sweeper: finds work that Redis or a dead worker lost, and hands it back to the queue.

Owns: the order of one sweep and the Celery task `llmq.sweep` that celery beat sends every
`settings.sweep_interval_s` (workers/beat.py). Must not: write SQL (core/ledger/sweep_repo.py
does), decide retries or quota (the pipeline does), or run for long: every step is bounded.

One sweep, in this order (the log line reports the letters):
  b) `running` jobs whose lease expired -> `queued`, re-sent; their `started` attempts -> `lost`
     and those attempts' quota reservations booked as spent (`spent_unknown`: the provider may
     have billed the call; a late finish replaces it with the real cost);
  c) any other `started` attempt older than a lease whose job moved on -> `lost`, booked too;
  e) `quota_exceeded` jobs whose window has reset -> `queued` (sent by step a);
  a) due `queued` jobs whose last message is older than `requeue_after_s` -> re-sent, oldest
     first, as many as the broker queue is missing (see `requeue_room`: no duplicate flood);
  d) active batches whose jobs are all terminal -> `done`;
  f) rows of workers silent for `WORKER_FORGET_S` (killed long ago) deleted.

Step b is also how a SIGKILLed worker's jobs come back: a worker process renews its jobs'
leases by heartbeat (workers/heartbeat.py), so they expire `heartbeat_s * heartbeat_missed`
seconds after its last beat, and the sweep after that re-queues them.

Several sweeps at once (several beats, or a slow one overlapping the next) are safe: the main
transaction takes a Postgres advisory lock and a second sweep skips; every UPDATE re-checks its
own condition anyway. Messages are published after the commit: a publish that fails leaves
`enqueued_at` bumped, and the job is found again `requeue_after_s` later.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.ledger import heartbeat_repo, sweep_repo
from core.ledger.db import session_scope
from core.names import SWEEP_TASK
from schemas.settings import Settings
from workers.app import app

log = logging.getLogger(__name__)

STEP_LIMIT = 500  # rows per step per sweep: a sweep stays short however much is pending
REQUEUE_LIMIT = 2000  # re-sends per sweep, below the backlog room
WORKER_FORGET_S = 3600.0  # a worker row silent this long is deleted (its jobs long reclaimed)

Publish = Callable[[Sequence[uuid.UUID]], None]


@dataclass
class SweepCounts:
    """What one sweep did, per step (see the module docstring for the letters)."""

    requeued: int = 0  # a
    reclaimed: int = 0  # b: jobs
    lost_attempts: int = 0  # b: attempts closed as lost
    released: int = 0  # c: orphaned attempts closed, reservation booked as spent_unknown
    batches_done: int = 0  # d
    resumed: int = 0  # e
    workers_pruned: int = 0  # f
    backlog: int | None = None  # broker queue length seen (None = unknown)
    stale: int = 0  # a: due queued jobs with an old message (counted up to backlog + limit)
    published: int = 0
    publish_failed: int = 0
    skipped: bool = False  # another sweep held the lock
    took_ms: int = 0

    def busy(self) -> bool:
        return any(
            (
                self.requeued,
                self.reclaimed,
                self.lost_attempts,
                self.released,
                self.batches_done,
                self.resumed,
                self.publish_failed,
            )
        )

    def line(self) -> str:
        return (
            f"sweep: a.requeued={self.requeued} b.reclaimed={self.reclaimed} "
            f"b.lost_attempts={self.lost_attempts} c.released={self.released} "
            f"d.batches_done={self.batches_done} e.resumed={self.resumed} "
            f"f.workers_pruned={self.workers_pruned} "
            f"backlog={'?' if self.backlog is None else self.backlog} stale={self.stale} "
            f"published={self.published} publish_failed={self.publish_failed} "
            f"took={self.took_ms}ms"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def requeue_room(settings: Settings, backlog: int | None, stale: int) -> int:
    """How many stale jobs this sweep may re-send, given the broker queue's length.

    Two signals, the larger wins: (1) more stale jobs than messages waiting means at least
    the difference lost theirs (Redis wiped, or a killed worker's reserved messages), less
    the few a live worker holds reserved; (2) a queue shorter than `requeue_backlog` is topped
    up to it, which also finds lost messages hiding behind a newer batch. A long queue of
    merely slow messages gets neither, so there is no flood of duplicates. Unknown backlog
    (broker unreachable) = 0: publishing would fail anyway.
    """
    if backlog is None:
        return 0
    return max(0, min(max(settings.requeue_backlog - backlog, stale - backlog), REQUEUE_LIMIT))


def sweep_once(
    sessions: sessionmaker[Session],
    settings: Settings,
    now: datetime,
    *,
    backlog: int | None,
    publish: Publish,
) -> SweepCounts:
    """One sweep (steps b, c, e, a, d); returns its counts. Database errors propagate."""
    started = time.monotonic()
    counts = SweepCounts(backlog=backlog)
    with session_scope(sessions) as s:
        if not sweep_repo.try_lock(s):
            counts.skipped = True
            return counts
        reclaimed = sweep_repo.reclaim_expired(s, now, STEP_LIMIT)
        lost = sweep_repo.open_attempts_of(s, reclaimed)
        stale_before = now - timedelta(seconds=settings.lease_s)
        orphans = sweep_repo.orphaned_attempts(s, stale_before, STEP_LIMIT)
        counts.resumed = len(sweep_repo.resume_parked(s, now, STEP_LIMIT))
        cutoff = now - timedelta(seconds=settings.requeue_after_s)
        if backlog is not None:
            counted = backlog + REQUEUE_LIMIT  # enough to decide; a bounded count
            counts.stale = sweep_repo.count_stale(s, now, cutoff, counted)
        room = requeue_room(settings, backlog, counts.stale)
        requeued = sweep_repo.requeue_stale(s, now, cutoff, room)
        counts.batches_done = len(sweep_repo.finish_batches(s, now))
        forget_before = now - timedelta(seconds=WORKER_FORGET_S)
        counts.workers_pruned = heartbeat_repo.prune(s, forget_before)
    counts.reclaimed, counts.requeued = len(reclaimed), len(requeued)
    # Each lost attempt in its own short transaction: its quota booking locks the window rows
    # in the same order a worker's settlement does, so the two can never deadlock.
    counts.lost_attempts = _close_lost(sessions, lost)
    seen = set(lost)
    counts.released = _close_lost(sessions, [k for k in orphans if k not in seen])
    _publish(publish, [*reclaimed, *requeued], counts)
    counts.took_ms = int((time.monotonic() - started) * 1000)
    return counts


def _close_lost(sessions: sessionmaker[Session], keys: Sequence[sweep_repo.AttemptKey]) -> int:
    closed = 0
    for key in keys:
        with session_scope(sessions) as s:
            closed += sweep_repo.close_lost_attempt(s, key)
    return closed


def _publish(publish: Publish, ids: list[uuid.UUID], counts: SweepCounts) -> None:
    if not ids:
        return
    try:
        publish(ids)
        counts.published = len(ids)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the next sweeps re-send
        counts.publish_failed = len(ids)
        log.warning("sweep: could not publish %d job ids (re-sent later): %s", len(ids), exc)


def broker_backlog(queue: str, url: str | None = None) -> int | None:
    """Jobs waiting in the broker queue `queue` (None = broker unreachable).

    On Redis: LLEN of each of the queue's priority lists, chunk lists counted at their
    messages' job capacity (`core.publish.backlog_jobs`). Any other transport: the message
    count of a passive declare (the embedded mode's memory broker, fed single-job messages).
    """
    try:
        with app.connection_for_read(url) as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
            channel = conn.default_channel
            if conn.transport.driver_type == "redis" and hasattr(channel, "conn_or_acquire"):
                return _redis_backlog(channel, queue)
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except conn.channel_errors:
                return 0  # Redis: an empty list does not exist, which kombu reports as 404
    except Exception as exc:  # noqa: BLE001 - unreachable broker: just report unknown
        log.warning("sweep: broker queue length unknown: %s", exc)
        return None


def _redis_backlog(channel: Any, queue: str) -> int:
    from kombu.transport.redis import PRIORITY_STEPS

    from core.publish import backlog_jobs, redis_queue_keys

    with channel.conn_or_acquire() as client:
        pipe = client.pipeline(transaction=False)
        for key in redis_queue_keys(queue):
            pipe.llen(key)
        lengths = pipe.execute()
    return backlog_jobs(dict(zip(PRIORITY_STEPS, (int(n) for n in lengths), strict=True)))


def publish_ids(broker_url: str, priority: int | None = None, per_message: int = 1) -> Publish:
    """The publish function: the producer's pipelined enqueue of job ids, at `priority`
    (None: the front list; the nightly run publishes at bulk priority), `per_message` ids a
    message (the sweeper's re-sends are single-job messages; the nightly run sends chunks)."""

    def publish(ids: Sequence[uuid.UUID]) -> None:
        from core.publish import INTERACTIVE_PRIORITY, enqueue_job_ids

        enqueue_job_ids(
            broker_url,
            list(ids),
            priority=INTERACTIVE_PRIORITY if priority is None else priority,
            per_message=per_message,
        )

    return publish


@app.task(name=SWEEP_TASK, ignore_result=True, acks_late=False)
def sweep() -> dict[str, Any]:
    """Celery task run by beat every few seconds (acked at start: a lost sweep is harmless,
    the next one comes `sweep_interval_s` later)."""
    from workers.runtime import get_runtime

    rt = get_runtime()
    settings = rt.settings
    try:
        counts = sweep_once(
            rt.sessions,
            settings,
            datetime.now(UTC),
            backlog=broker_backlog(app.conf.task_default_queue),
            publish=publish_ids(settings.broker_url),
        )
    except (OperationalError, InterfaceError) as exc:
        # Postgres restarting or unreachable: nothing was changed; the next sweep retries.
        log.warning("sweep skipped: database unreachable: %s", str(exc).splitlines()[0])
        return {"skipped": True, "error": "database unreachable"}
    if counts.busy():
        log.info(counts.line())
    else:
        log.debug(counts.line())
    return counts.as_dict()
