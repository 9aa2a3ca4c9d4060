"""The nightly run's ledger side: the exactly-once row, phase progress, inbox records and
picking up due work. The figures behind the report are read by nightly_figures_repo.py.

Owns: every write to `nightly_runs`, `inbox_files` and `nightly_run_jobs`, and the state
changes that hand due work to the run (deferred, parked and retryable failed jobs -> queued
under the nightly tenant), plus the run's advisory lock. Must not: open or commit transactions
(callers pass a session inside `session_scope`; the lock takes a dedicated connection), publish
messages, read the clock (callers pass `now`), or decide which failures are retryable (the
caller passes the error kinds).

Exactly once: `open_run` inserts `(name, run_date)` with ON CONFLICT DO NOTHING on a UNIQUE
key, so two beats, a redelivered task or a second `llmq nightly run --now` all find the same
row. Whoever does the work also holds a session-level Postgres advisory lock keyed on the run
(released when its connection closes, so a killed run never leaves it held); a run found
`running` without that lock held is a crashed run, and is resumed from its recorded phase.
SQLite (embedded mode) runs one process: no lock.

Picking: rows are chosen with `FOR UPDATE SKIP LOCKED` and every UPDATE re-checks the state,
so the sweeper resuming the same parked job, or a user cancelling a batch, never races into a
double hand-over. Each picked job gets a `nightly_run_jobs` row in the same transaction: the
report's scope, and (source 'retry') the count that bounds nightly re-runs of a failed job.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.ledger.models import Batch, InboxFile, Job, NightlyRun, NightlyRunJob
from schemas.job import BatchState, JobState

_jobs = Job.__table__
_batches = Batch.__table__
_links = NightlyRunJob.__table__
_runs = NightlyRun.__table__

RUNNING, DONE = "running", "done"
LOCK_CLASS = 0x6C6E6967  # first key of pg_try_advisory_lock(int, int): "lnig"
OPEN_STATES = (JobState.QUEUED.value, JobState.RUNNING.value, JobState.BATCHED.value)


@dataclass(frozen=True)
class RunRow:
    id: int
    name: str
    run_date: date
    state: str  # running | done
    phase: str | None  # the next phase to run
    started_at: datetime
    finished_at: datetime | None
    report: dict[str, Any] | None


def _utc(at: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive (its UTC wall clock): make them aware again."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _row(r: NightlyRun) -> RunRow:
    started = _utc(r.started_at)
    assert started is not None
    return RunRow(
        r.id, r.name, r.run_date, r.state, r.phase, started, _utc(r.finished_at), r.report
    )


def _is_postgres(bind: Session | Connection) -> bool:
    dialect = bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect
    return dialect.name == "postgresql"


def _insert(session: Session) -> Any:
    return pg_insert if _is_postgres(session) else sqlite_insert


# ---- the exactly-once row and its lock ----------------------------------------------------


def lock_keys(name: str, run_date: date) -> tuple[int, int]:
    """The two int4 keys of the run's advisory lock (a stable hash of name and date)."""
    digest = zlib.crc32(f"{name}:{run_date.isoformat()}".encode())
    return LOCK_CLASS, digest - (1 << 31)


def try_lock(conn: Connection, name: str, run_date: date) -> bool:
    """Take the run's session-level advisory lock on `conn`; False = another process has it.

    Held until `unlock` or until the connection closes (a crashed run frees it). Runs
    outside any transaction the caller cares about (autocommit-safe). SQLite: True.
    """
    if not _is_postgres(conn):
        return True
    k1, k2 = lock_keys(name, run_date)
    got = conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": k1, "b": k2}).scalar()
    conn.commit()
    return bool(got)


def unlock(conn: Connection, name: str, run_date: date) -> None:
    if _is_postgres(conn):
        k1, k2 = lock_keys(name, run_date)
        conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": k1, "b": k2})
        conn.commit()


def open_run(
    session: Session, name: str, run_date: date, first_phase: str, now: datetime
) -> RunRow:
    """Insert the run's row if it does not exist (ON CONFLICT DO NOTHING), then return it."""
    stmt = _insert(session)(NightlyRun).values(
        name=name, run_date=run_date, state=RUNNING, phase=first_phase, started_at=now
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["name", "run_date"]))
    found = get_run(session, name, run_date)
    assert found is not None  # just inserted, or inserted by someone else before
    return found


def get_run(session: Session, name: str, run_date: date) -> RunRow | None:
    stmt = select(NightlyRun).where(NightlyRun.name == name, NightlyRun.run_date == run_date)
    row = session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()
    return None if row is None else _row(row)


def latest_run(
    session: Session, name: str, before: date | None = None, done: bool = True
) -> RunRow | None:
    """The newest run (optionally finished, optionally dated before `before`)."""
    stmt = select(NightlyRun).where(NightlyRun.name == name)
    if done:
        stmt = stmt.where(NightlyRun.state == DONE)
    if before is not None:
        stmt = stmt.where(NightlyRun.run_date < before)
    row = session.execute(stmt.order_by(NightlyRun.run_date.desc()).limit(1)).scalar_one_or_none()
    return None if row is None else _row(row)


def unfinished_runs(session: Session, name: str, before: date) -> list[RunRow]:
    """Runs dated before `before` still `running` (crashed, or running elsewhere), oldest first."""
    stmt = (
        select(NightlyRun)
        .where(NightlyRun.name == name, NightlyRun.state == RUNNING, NightlyRun.run_date < before)
        .order_by(NightlyRun.run_date)
    )
    return [_row(r) for r in session.execute(stmt).scalars()]


def set_phase(session: Session, run_id: int, phase: str) -> None:
    """Record the next phase to run (a resumed run starts there)."""
    session.execute(update(_runs).where(_runs.c.id == run_id).values(phase=phase))


def finish_run(session: Session, run_id: int, report: dict[str, Any], now: datetime) -> None:
    session.execute(
        update(_runs)
        .where(_runs.c.id == run_id)
        .values(state=DONE, phase=DONE, report=report, finished_at=now)
    )


# ---- inbox -------------------------------------------------------------------------------


def inbox_state(session: Session, sha256: str) -> str | None:
    """'ingested' or 'rejected' if a file with this content was seen before, else None."""
    return session.scalar(select(InboxFile.state).where(InboxFile.sha256 == sha256))


def record_inbox(
    session: Session,
    sha256: str,
    name: str,
    state: str,
    batch_id: uuid.UUID | None,
    run_id: int,
    now: datetime,
) -> None:
    session.execute(
        insert(InboxFile).values(
            sha256=sha256, name=name, state=state, batch_id=batch_id, run_id=run_id, seen_at=now
        )
    )


def forget_inbox(session: Session, sha256: str) -> None:
    """Drop a `rejected` record, so the same content can be ingested now that it is valid."""
    session.execute(
        delete(InboxFile).where(InboxFile.sha256 == sha256, InboxFile.state == "rejected")
    )


# ---- picking up due work -----------------------------------------------------------------


def _link(session: Session, run_id: int, rows: Sequence[tuple[uuid.UUID, str, str]]) -> None:
    """One nightly_run_jobs row per (job id, source, previous tenant)."""
    if rows:
        values = [
            {"run_id": run_id, "job_id": j, "source": src, "from_tenant": t} for j, src, t in rows
        ]
        stmt = _insert(session)(NightlyRunJob).values(values)
        session.execute(stmt.on_conflict_do_nothing(index_elements=["run_id", "job_id"]))


def _take(  # noqa: PLR0913
    session: Session,
    where: Any,
    tenant: str,
    now: datetime,
    limit: int,
    deadline: datetime | None = None,
) -> list[Any]:
    """Lock up to `limit` jobs matching `where` (skipping rows others hold), move them to
    queued under `tenant`, due now and marked sent now (the caller publishes right after
    commit; if that fails the sweeper re-sends them). Returns the moved rows as picked."""
    cols = (_jobs.c.id, _jobs.c.tenant, _jobs.c.batch_id, _jobs.c.attempts, _jobs.c.routing_state)
    picked = session.execute(
        select(*cols)
        .where(where)
        .order_by(_jobs.c.created_at, _jobs.c.line_no)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not picked:
        return []
    queued = dict(
        state=JobState.QUEUED.value,
        tenant=tenant,
        not_before=None,
        lease_until=None,
        deadline=deadline,  # issue 18: the run's jobs may wait for a batch lane until then
    )
    stmt = (
        update(_jobs)
        .where(_jobs.c.id.in_([r.id for r in picked]), where)
        .values(**queued, enqueued_at=now)
        .returning(_jobs.c.id)
    )
    moved = set(session.execute(stmt).scalars())
    return [r for r in picked if r.id in moved]


def release_deferred(  # noqa: PLR0913
    session: Session,
    run_id: int,
    tenant: str,
    inbox: set[uuid.UUID],
    now: datetime,
    limit: int,
    deadline: datetime | None = None,
) -> list[uuid.UUID]:
    """Up to `limit` deferred jobs -> queued under the nightly tenant; returns their ids.
    Jobs of the batches in `inbox` (this run's inbox files) are linked as source 'inbox'."""
    rows = _take(session, _jobs.c.state == JobState.DEFERRED.value, tenant, now, limit, deadline)
    sources = ["inbox" if r.batch_id in inbox else "deferred" for r in rows]
    _link(session, run_id, [(r.id, src, r.tenant) for r, src in zip(rows, sources, strict=True)])
    return [r.id for r in rows]


def requeue_parked(  # noqa: PLR0913
    session: Session,
    run_id: int,
    tenant: str,
    now: datetime,
    limit: int,
    deadline: datetime | None = None,
) -> list[uuid.UUID]:
    """Up to `limit` quota_exceeded jobs whose window has reset (`not_before` passed) ->
    queued under the nightly tenant. Jobs parked without a reset time (a batch's max cost)
    stay parked: they wait for `llmq resume`."""
    due = (
        (_jobs.c.state == JobState.QUOTA_EXCEEDED.value)
        & _jobs.c.not_before.is_not(None)
        & (_jobs.c.not_before <= now)
    )
    rows = _take(session, due, tenant, now, limit, deadline)
    _link(session, run_id, [(r.id, "parked", r.tenant) for r in rows])
    return [r.id for r in rows]


def retry_failed(
    session: Session,
    run_id: int,
    tenant: str,
    kinds: Sequence[str],
    max_retries: int,
    now: datetime,
    limit: int,
    deadline: datetime | None = None,
) -> list[uuid.UUID]:
    """Up to `limit` failed jobs whose error kind is in `kinds` and that nightly runs have
    re-run fewer than `max_retries` times -> queued under the nightly tenant, with a fresh
    attempt budget (`routing_state.attempt_base` = attempts so far; see jobs_repo).

    Jobs of cancelled batches and jobs this run already picked up are left alone. Their
    batches go back to `active` until the sweeper finds them all terminal again.
    """
    if max_retries <= 0 or not kinds:
        return []
    retries = (
        select(func.count())
        .select_from(_links)
        .where(_links.c.job_id == _jobs.c.id, _links.c.source == "retry")
        .scalar_subquery()
    )
    this_run = select(_links.c.job_id).where(_links.c.run_id == run_id)
    live_batch = select(_batches.c.id).where(_batches.c.state != BatchState.CANCELLED.value)
    due = (
        (_jobs.c.state == JobState.FAILED.value)
        & _jobs.c.error["type"].as_string().in_(list(kinds))
        & (retries < max_retries)
        & _jobs.c.id.not_in(this_run)
        & _jobs.c.batch_id.in_(live_batch)
    )
    rows = _take(session, due, tenant, now, limit, deadline)
    if not rows:
        return []
    # A fresh attempt budget (rows are locked by _take's FOR UPDATE: every one matches).
    stmt = (
        update(_jobs)
        .where(_jobs.c.id == bindparam("jid"))
        .values(routing_state=bindparam("rs"), error=None, finished_at=None)
    )
    params = [
        {"jid": r.id, "rs": {**(r.routing_state or {}), "attempt_base": int(r.attempts)}}
        for r in rows
    ]
    session.execute(stmt, params)
    batches = {r.batch_id for r in rows}
    session.execute(
        update(_batches)
        .where(_batches.c.id.in_(batches), _batches.c.state == BatchState.DONE.value)
        .values(state=BatchState.ACTIVE.value, finished_at=None)
    )
    _link(session, run_id, [(r.id, "retry", r.tenant) for r in rows])
    return [r.id for r in rows]


def open_jobs(session: Session, run_id: int) -> int:
    """The run's jobs that can still make progress on their own (queued or running)."""
    stmt = (
        select(func.count())
        .select_from(_links.join(_jobs, _jobs.c.id == _links.c.job_id))
        .where(_links.c.run_id == run_id, _jobs.c.state.in_(OPEN_STATES))
    )
    return int(session.scalar(stmt) or 0)


def inbox_batches(session: Session, run_id: int) -> set[uuid.UUID]:
    stmt = select(InboxFile.batch_id).where(
        InboxFile.run_id == run_id, InboxFile.batch_id.is_not(None)
    )
    return set(session.scalars(stmt))
