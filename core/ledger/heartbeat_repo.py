"""Worker heartbeats in the ledger: the `workers` rows and the lease renewal of their jobs.

Owns: every write to `workers` and the one statement that renews the leases of the jobs a
worker is running now (`jobs.lease_until` where `jobs.worker_id` is that worker and the id is
one the worker says it is working on). Must not: open or commit
transactions (the caller passes a session inside `session_scope`), read the clock (callers
pass `now`), or touch any other column of `jobs` (claims and the fence are `jobs_repo`'s).

The idea is procrastinate's: a worker process beats every few seconds from one background
thread. Each beat is one transaction of two statements, whatever the number of jobs in flight:
the worker's row gets `last_heartbeat = now`, and every job the worker is working on (`state =
'running' AND worker_id = <it> AND id IN <its in-flight ids>`) gets `lease_until = now +
heartbeat lease`. The in-flight ids matter: a run that died on an error (Postgres restarting)
may leave its job `running` under this worker; renewing by worker alone would keep that job
leased, and never reclaimed, for as long as the worker lives. A job whose
worker stops beating therefore has an expired lease `heartbeat lease` after the last beat,
and the sweeper's lease reclaim (sweep_repo.reclaim_expired) hands it back; a live worker's
call is never stolen however long it runs, because its lease keeps moving.

Renewal never touches a job another claim took over (its `worker_id` changed) or a job no
longer running, so a beat cannot revive anything; the attempt fence stays the guard for
everything else.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from core.ledger.models import Job, Worker
from schemas.job import JobState

_jobs = Job.__table__
_workers = Worker.__table__


def register(
    session: Session, worker_id: uuid.UUID, hostname: str, pid: int, now: datetime
) -> None:
    """Insert the worker's row (a fresh id per process start)."""
    session.execute(
        insert(_workers).values(
            id=worker_id,
            hostname=hostname[:255],
            pid=pid,
            started_at=now,
            last_heartbeat=now,
        )
    )


def beat(
    session: Session,
    worker_id: uuid.UUID,
    now: datetime,
    lease_until: datetime,
    job_ids: Collection[uuid.UUID],
) -> int:
    """One heartbeat: the worker's row, then each of `job_ids` (the jobs the worker is
    running now) that it still holds, leased to `lease_until`. Returns the number renewed.

    A worker row that is gone (pruned while the process was stalled for long) is not
    re-created here: the caller re-registers when this returns -1.
    """
    seen = session.execute(
        update(_workers).where(_workers.c.id == worker_id).values(last_heartbeat=now)
    ).rowcount
    if not seen:
        return -1
    if not job_ids:
        return 0
    renewed = session.execute(
        update(_jobs)
        .where(
            _jobs.c.id.in_(list(job_ids)),
            _jobs.c.worker_id == worker_id,
            _jobs.c.state == JobState.RUNNING.value,
        )
        .values(lease_until=lease_until)
    ).rowcount
    return int(renewed or 0)


def forget(session: Session, worker_id: uuid.UUID) -> None:
    """Delete the worker's row (a clean shutdown; its jobs are finished or handed back)."""
    session.execute(delete(_workers).where(_workers.c.id == worker_id))


def prune(session: Session, silent_before: datetime) -> int:
    """Delete the rows of workers silent since before `silent_before` (killed long ago);
    returns how many. Their jobs' leases expired long before and the sweeper reclaimed them."""
    gone = session.execute(delete(_workers).where(_workers.c.last_heartbeat < silent_before))
    return int(gone.rowcount or 0)
