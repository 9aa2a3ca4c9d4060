"""The sweeper's queries and state changes: the ledger side of recovering lost work.

Owns: every write the sweeper makes to `jobs`, `attempts` and `batches` (re-enqueue marks,
lease reclaims, lost attempts, finished batches, resumed parked jobs) and the sweep's
advisory lock. Must not: open or commit transactions (the caller passes a session inside
`session_scope`), publish messages, read the clock (callers pass `now`), or change quota
windows directly (a lost attempt's reservation is booked through `quota_repo.settle`).

Every function is idempotent and safe to run from several sweepers at once: each picks rows
with `FOR UPDATE SKIP LOCKED` and re-checks its condition in the UPDATE itself, so two sweeps
(or a sweep and a worker) never act on the same row twice. The advisory lock only saves work.
SQLite (embedded mode) has one writer at a time: no lock, and `FOR UPDATE` compiles to nothing.

The rows to change are picked in a CTE (`WITH picked AS (SELECT ... LIMIT k FOR UPDATE SKIP
LOCKED) UPDATE ... FROM picked`), not in `WHERE id IN (SELECT ...)`: Postgres may run such a
sub-select more than once, and each run skips the rows the previous ones just locked, so the
LIMIT would not hold. A locking CTE runs exactly once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, exists, false, func, not_, or_, select, text, update
from sqlalchemy.orm import Session

from core.ledger import quota_repo
from core.ledger.models import Attempt, Batch, Job
from schemas.job import TERMINAL_STATES, AttemptOutcome, BatchState, ErrorKind, JobState

_jobs = Job.__table__
_attempts = Attempt.__table__
_batches = Batch.__table__

# pg_try_advisory_xact_lock key: any fixed 64-bit number; this one spells "llmqswp".
SWEEP_LOCK_KEY = 0x6C6C6D71737770
LOST_MESSAGE = "worker lost during the call (lease expired); the provider may have billed it"
_TERMINAL = sorted(s.value for s in TERMINAL_STATES)


@dataclass(frozen=True, slots=True)
class AttemptKey:
    job_id: uuid.UUID
    attempt_no: int


def try_lock(session: Session) -> bool:
    """Take the sweep lock for this transaction; False = another sweep is running now.

    Postgres: a transaction-scoped advisory lock, released at commit or when the connection
    dies (a killed sweeper never leaves it held). SQLite: always True (single writer).
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    got = session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK_KEY})
    return bool(got.scalar())


def reclaim_expired(session: Session, now: datetime, limit: int) -> list[uuid.UUID]:
    """`running` jobs whose lease expired (their worker died or hung) -> `queued`.

    `enqueued_at` is set to now because the caller publishes their ids right after commit.
    The attempt counter is left alone: the next claim increments it, which fences off the
    old worker should it still be alive and finish late.
    """
    picked = (
        select(_jobs.c.id)
        .where(_jobs.c.state == JobState.RUNNING.value, _jobs.c.lease_until < now)
        .order_by(_jobs.c.lease_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    stmt = (
        update(_jobs)
        .where(
            _jobs.c.id == picked.c.id,
            _jobs.c.state == JobState.RUNNING.value,
            _jobs.c.lease_until < now,
        )
        .values(state=JobState.QUEUED.value, lease_until=None, enqueued_at=now)
        .returning(_jobs.c.id)
    )
    return list(session.execute(stmt).scalars())


def resume_parked(session: Session, now: datetime, limit: int) -> list[uuid.UUID]:
    """`quota_exceeded` jobs whose window has reset (not_before passed) -> `queued`.

    Jobs parked without a reset time (a batch's max cost) wait for `llmq resume`. No message
    is sent here: `enqueued_at` is cleared so `requeue_stale` sends one under the backlog cap
    (a month rollover may wake many jobs at once).
    """
    picked = (
        select(_jobs.c.id)
        .where(
            _jobs.c.state == JobState.QUOTA_EXCEEDED.value,
            _jobs.c.not_before.is_not(None),
            _jobs.c.not_before <= now,
        )
        .order_by(_jobs.c.not_before)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    stmt = (
        update(_jobs)
        .where(
            _jobs.c.id == picked.c.id,
            _jobs.c.state == JobState.QUOTA_EXCEEDED.value,
        )
        .values(state=JobState.QUEUED.value, not_before=None, enqueued_at=None)
        .returning(_jobs.c.id)
    )
    return list(session.execute(stmt).scalars())


def _stale_queued(now: datetime, stale_before: datetime) -> Any:
    """Due `queued` jobs whose last message (or creation, if none) is older than the cutoff."""
    last_sent = func.coalesce(_jobs.c.enqueued_at, _jobs.c.created_at)
    due = or_(_jobs.c.not_before.is_(None), _jobs.c.not_before <= now)
    return and_(_jobs.c.state == JobState.QUEUED.value, due, last_sent < stale_before)


def count_stale(session: Session, now: datetime, stale_before: datetime, at_most: int) -> int:
    """How many jobs `requeue_stale` could pick, counting no further than `at_most`."""
    capped = select(_jobs.c.id).where(_stale_queued(now, stale_before)).limit(at_most).subquery()
    return int(session.execute(select(func.count()).select_from(capped)).scalar_one())


def requeue_stale(
    session: Session, now: datetime, stale_before: datetime, limit: int
) -> list[uuid.UUID]:
    """Due `queued` jobs whose last message is older than `stale_before`: mark them re-sent.

    Covers a message lost in Redis, a countdown message that never came (its `enqueued_at` is
    the time it was due), and a job requeued with no message at all. Oldest first, at most
    `limit` (the caller sizes it from the broker's backlog, so a slow queue is not flooded
    with duplicates). `enqueued_at` moves to now in the same statement; the caller publishes.
    """
    if limit <= 0:
        return []
    stale = _stale_queued(now, stale_before)
    picked = (
        select(_jobs.c.id)
        .where(stale)
        .order_by(func.coalesce(_jobs.c.enqueued_at, _jobs.c.created_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    stmt = (
        update(_jobs)
        .where(_jobs.c.id == picked.c.id, stale)
        .values(enqueued_at=now)
        .returning(_jobs.c.id)
    )
    return list(session.execute(stmt).scalars())


def open_attempts_of(session: Session, job_ids: list[uuid.UUID]) -> list[AttemptKey]:
    """The still-`started` attempt rows of these (just reclaimed) jobs."""
    if not job_ids:
        return []
    rows = session.execute(
        select(_attempts.c.job_id, _attempts.c.attempt_no).where(
            _attempts.c.job_id.in_(job_ids),
            _attempts.c.outcome == AttemptOutcome.STARTED.value,
        )
    )
    return [AttemptKey(r.job_id, r.attempt_no) for r in rows]


def orphaned_attempts(session: Session, started_before: datetime, limit: int) -> list[AttemptKey]:
    """`started` attempts older than `started_before` whose job has moved on.

    "Moved on": the job is no longer running this attempt (it was reclaimed and claimed
    again, finished, cancelled...). An attempt the job is still running under a live lease
    is never touched, however old (a long call with a renewed lease).
    """
    # A job waiting in a provider batch lane (issue 18) holds its attempt open for hours, with
    # no lease: that attempt is current too, and its reservation stays until its result.
    current = and_(
        _jobs.c.state.in_((JobState.RUNNING.value, JobState.BATCHED.value)),
        _jobs.c.attempts == _attempts.c.attempt_no,
    )
    rows = session.execute(
        select(_attempts.c.job_id, _attempts.c.attempt_no)
        .join(_jobs, _jobs.c.id == _attempts.c.job_id)
        .where(
            _attempts.c.outcome == AttemptOutcome.STARTED.value,
            _attempts.c.started_at < started_before,
            not_(current),
        )
        .order_by(_attempts.c.started_at)
        .limit(limit)
    )
    return [AttemptKey(r.job_id, r.attempt_no) for r in rows]


def close_lost_attempt(session: Session, key: AttemptKey) -> bool:
    """Mark one attempt `lost` and book its reservation as spent; False if already closed.

    The UPDATE is conditioned on the row still being `started`, so a worker finishing late
    (`jobs_repo.close_attempt`, same condition) and this sweep can never both settle it.
    The provider may have served (and billed) the call while its usage is unknown, so the
    reservation, the worst case admitted, is booked as spent on the windows of the tenant and
    batch the attempt charged (issue 19: `spent_unknown`, never released). The attempt row
    keeps it as `reserved_*` with outcome `lost`, which is how reports show it; a late finish
    replaces the booking with the real spend (`workers/attempt.py`, `_settle`).
    """
    stmt = (
        update(_attempts)
        .where(
            _attempts.c.job_id == key.job_id,
            _attempts.c.attempt_no == key.attempt_no,
            _attempts.c.outcome == AttemptOutcome.STARTED.value,
        )
        .values(
            outcome=AttemptOutcome.LOST.value,
            error_kind=ErrorKind.LOST.value,
            error_message=LOST_MESSAGE,
        )
        .returning(
            _attempts.c.started_at,
            _attempts.c.reserved_tokens,
            _attempts.c.reserved_usd,
            _attempts.c.tenant,
        )
    )
    row = session.execute(stmt).one_or_none()
    if row is None:
        return False
    if row.reserved_tokens or row.reserved_usd:
        tokens, usd = int(row.reserved_tokens or 0), Decimal(row.reserved_usd or 0)
        # the batch never changes on a job; the tenant may have (a nightly re-assignment)
        batch_id = session.execute(select(_jobs.c.batch_id).where(_jobs.c.id == key.job_id))
        quota_repo.settle(
            session, row.tenant, batch_id.scalar_one(), row.started_at, tokens, usd, tokens, usd
        )
    return True


def finish_batches(session: Session, now: datetime) -> list[uuid.UUID]:
    """Active batches whose jobs are all terminal -> `done`, with `finished_at`.

    A batch holding fewer jobs than `total_jobs` (one still being filled, e.g. by a nightly
    run in phases) is left alone.
    """
    open_job = exists().where(_jobs.c.batch_id == _batches.c.id, _jobs.c.state.not_in(_TERMINAL))
    job_count = (
        select(func.count()).select_from(_jobs).where(_jobs.c.batch_id == _batches.c.id)
    ).scalar_subquery()
    # CASE fixes the order: the count runs only for batches with no open job left.
    finished = case((open_job, false()), else_=job_count >= _batches.c.total_jobs)
    stmt = (
        update(_batches)
        .where(_batches.c.state == BatchState.ACTIVE.value, finished)
        .values(state=BatchState.DONE.value, finished_at=now)
        .returning(_batches.c.id)
    )
    return list(session.execute(stmt).scalars())
