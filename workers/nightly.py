"""The nightly backlog run: exactly once per (name, UTC date), in phases, resumable.

Owns: the order of a run, the nightly budget, the release/parked/retry/wait phases, the
Celery task `llmq.nightly_run` that beat sends (workers/beat.py) and the hand-sent variant
`send_run` (`llmq nightly run`). Must not: write SQL (core/ledger/nightly_repo.py and
batches_repo do), process jobs itself (the normal workers do, from the ids published here),
or import provider code (the CLI runs this module in-process). The inbox's file handling
(ingest) lives in workers/nightly_inbox.py, the report files in workers/nightly_report_phase.py.

Phases, in order; `nightly_runs.phase` names the next one, so a crashed run resumes there:
  ingest   each inbox *.jsonl -> a deferred batch under the nightly tenant, moved to
           processed/ (or, invalid, to rejected/ with its errors); see workers/nightly_inbox.py.
  release  the nightly tenant's day quota becomes `nightly.budget_usd`; every deferred job
           (inbox batches included) -> queued under the nightly tenant, and published.
  parked   quota_exceeded jobs whose window has reset -> queued under the nightly tenant.
  retry    failed jobs of a retryable kind (RETRYABLE_KINDS), re-run at most
           `nightly.retry_failed_max` times over all nights, with a fresh attempt budget.
  wait     poll the ledger until none of the run's jobs is queued or running (parked ones
           count as settled), or until `wait_timeout_s`.
  report   figures from the ledger -> JSON and Markdown in `nightly.report_dir`, and the JSON
           in `nightly_runs.report`; the row becomes `done` (workers/nightly_report_phase.py).

Every phase is idempotent on its own (picking is by state, ingest by content hash), so a crash
between a phase's work and its phase update only repeats what is left of that phase.

Budget choice: the run processes everything as the nightly tenant (jobs it picks up are
re-assigned to that tenant, their previous tenant is kept in `nightly_run_jobs.from_tenant`)
and `budget_usd` becomes that tenant's *day* limit via `quota_repo.set_limits`, so the usual
reservations stop the run's spend at the budget; what does not fit is parked as
quota_exceeded and shows in the report. A run that crosses midnight UTC starts a new day
window. `llmq usage` groups by a job's current tenant: a re-run failed job's earlier attempts
then show under the nightly tenant too (the budget windows keep them where they were booked).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.ledger import nightly_repo
from core.ledger import quota_limits_repo as quota_repo  # get/set_limits moved there
from core.ledger.db import session_scope
from schemas.config import LLMConfig
from schemas.job import ErrorKind
from workers.app import app
from workers.nightly_inbox import (  # noqa: F401 - re-exported: workers.nightly's public names
    HASH_BLOCK,
    PROCESSED,
    REJECTED,
    free_path,
    inbox_files,
    ingest_file,
    ingest_inbox,
    sha256_of,
)
from workers.nightly_report_phase import (  # noqa: F401 - re-exported, as above
    report_paths,
    report_phase,
    write_report_files,
)

log = logging.getLogger(__name__)

TASK_NAME = "llmq.nightly_run"
CONTROL_QUEUE = "llmq.control"  # celeryconfig's queue for periodic tasks
RUN_NAME = "nightly"
PHASES = ("ingest", "release", "parked", "retry", "wait", "report")
RETRYABLE_KINDS = tuple(
    k.value
    for k in (
        ErrorKind.RATE_LIMITED,
        ErrorKind.UNAVAILABLE,
        ErrorKind.TIMEOUT,
        ErrorKind.ATTEMPTS_EXHAUSTED,
    )
)
CHUNK = 2000  # jobs handed over per transaction (and per publish)

Publish = Callable[[Sequence[uuid.UUID]], None]
Status = Literal["done", "already_done", "busy", "stopped"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class NightlyContext:
    """What a run needs: the ledger, the config, a way to publish job ids, a clock."""

    sessions: sessionmaker[Session]
    engine: Engine  # the advisory lock takes one connection from it for the whole run
    config: LLMConfig
    publish: Publish
    clock: Callable[[], datetime] = _utcnow
    poll_s: float = 2.0  # seconds between ledger polls while waiting
    wait_timeout_s: float = 20 * 3600.0  # then the report is written with what settled
    progress: Callable[[str], None] | None = None  # one line per step, for the CLI
    name: str = RUN_NAME

    def say(self, message: str) -> None:
        log.info("nightly: %s", message)
        if self.progress is not None:
            self.progress(message)


@dataclass
class RunResult:
    status: Status
    run_date: date
    phases_run: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    paths: list[Path] = field(default_factory=list)  # report files written by this call


# ---- pure helpers ------------------------------------------------------------------------


def scheduled_date(now: datetime, hhmm: str) -> date:
    """The date of the latest scheduled run at or before `now` (UTC): a run beat fires late,
    after midnight, still belongs to the night it was scheduled for."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    now = now.astimezone(UTC)
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return now.date() if now >= at else now.date() - timedelta(days=1)


def next_phase(phase: str) -> str:
    i = PHASES.index(phase)
    return PHASES[i + 1] if i + 1 < len(PHASES) else nightly_repo.DONE


# ---- the run -----------------------------------------------------------------------------


def run_nightly(ctx: NightlyContext, run_date: date, *, stop_after: str | None = None) -> RunResult:
    """Run (or resume) the night's run for `run_date`; a finished or busy run is left alone.

    Args:
        run_date: the UTC date the run belongs to (its exactly-once key with `ctx.name`).
        stop_after: run phases up to and including this one, then return with the run still
            `running`, as a crash there would leave it (operators and tests; resume later).
    """
    if stop_after is not None and stop_after not in PHASES:
        raise ValueError(f"stop_after: {stop_after!r} is not one of {PHASES}")
    with session_scope(ctx.sessions) as s:
        run = nightly_repo.open_run(s, ctx.name, run_date, PHASES[0], ctx.clock())
    if run.state == nightly_repo.DONE:
        return RunResult("already_done", run_date, report=run.report)
    with ctx.engine.connect() as conn:
        if not nightly_repo.try_lock(conn, ctx.name, run_date):
            ctx.say(f"{run_date}: another process is running this night's run")
            return RunResult("busy", run_date)
        try:
            with session_scope(ctx.sessions) as s:
                run = nightly_repo.get_run(s, ctx.name, run_date) or run
            if run.state == nightly_repo.DONE:  # finished while we waited for the lock
                return RunResult("already_done", run_date, report=run.report)
            return _run_phases(ctx, run, stop_after)
        finally:
            _unlock(conn, ctx.name, run_date)


def _unlock(conn: Any, name: str, run_date: date) -> None:
    try:
        nightly_repo.unlock(conn, name, run_date)
    except Exception:  # noqa: BLE001 - a broken connection: drop it, which frees the lock
        conn.invalidate()


def _run_phases(ctx: NightlyContext, run: nightly_repo.RunRow, stop_after: str | None) -> RunResult:
    result = RunResult("stopped", run.run_date)
    start = PHASES.index(run.phase) if run.phase in PHASES else 0
    if start:
        ctx.say(f"{run.run_date}: resuming at phase {run.phase}")
    for phase in PHASES[start:]:
        ctx.say(f"{run.run_date}: phase {phase}")
        if phase == "report":
            result.report, result.paths = report_phase(ctx, run)
            result.status = "done"
        else:
            _PHASES[phase](ctx, run)
            with session_scope(ctx.sessions) as s:
                nightly_repo.set_phase(s, run.id, next_phase(phase))
        result.phases_run.append(phase)
        if phase == stop_after:
            break
    return result


# ---- phases: release, parked, retry, wait ------------------------------------------------


def _publish(ctx: NightlyContext, ids: Sequence[uuid.UUID]) -> None:
    if not ids:
        return
    try:
        ctx.publish(ids)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweeper re-sends them
        log.warning("nightly: could not publish %d job ids (the sweeper will): %s", len(ids), exc)


def _hand_over(ctx: NightlyContext, what: str, take: Callable[[Session], list[uuid.UUID]]) -> int:
    """Repeat `take` (one transaction, one chunk) and publish each chunk after its commit."""
    total = 0
    while True:
        with session_scope(ctx.sessions) as s:
            ids = take(s)
        _publish(ctx, ids)
        total += len(ids)
        if not ids:
            ctx.say(f"{what}: {total} jobs queued")
            return total


def _apply_budget(ctx: NightlyContext, now: datetime) -> None:
    """The nightly tenant's day limit := budget_usd (its token limit is kept)."""
    nightly = ctx.config.nightly
    if nightly.budget_usd is None:
        return
    with session_scope(ctx.sessions) as s:
        _, day_tokens = quota_repo.get_limits(s, nightly.tenant)["day"]
        quota_repo.set_limits(s, nightly.tenant, "day", nightly.budget_usd, day_tokens, now)


def _release(ctx: NightlyContext, run: nightly_repo.RunRow) -> None:
    now = ctx.clock()
    _apply_budget(ctx, now)
    tenant = ctx.config.nightly.tenant
    with session_scope(ctx.sessions) as s:
        inbox = nightly_repo.inbox_batches(s, run.id)
    _hand_over(
        ctx,
        "deferred",
        lambda s: nightly_repo.release_deferred(s, run.id, tenant, inbox, ctx.clock(), CHUNK),
    )


def _parked(ctx: NightlyContext, run: nightly_repo.RunRow) -> None:
    tenant = ctx.config.nightly.tenant
    _hand_over(
        ctx,
        "parked",
        lambda s: nightly_repo.requeue_parked(s, run.id, tenant, ctx.clock(), CHUNK),
    )


def _retry(ctx: NightlyContext, run: nightly_repo.RunRow) -> None:
    nightly = ctx.config.nightly
    _hand_over(
        ctx,
        "retryable failures",
        lambda s: nightly_repo.retry_failed(
            s, run.id, nightly.tenant, RETRYABLE_KINDS, nightly.retry_failed_max, ctx.clock(), CHUNK
        ),
    )


def _wait(ctx: NightlyContext, run: nightly_repo.RunRow) -> None:
    deadline = time.monotonic() + ctx.wait_timeout_s
    last = -1
    while True:
        with session_scope(ctx.sessions) as s:
            left = nightly_repo.open_jobs(s, run.id)
        if left == 0:
            return
        if time.monotonic() >= deadline:
            log.warning(
                "nightly %s: %d jobs still open after the wait; reporting", run.run_date, left
            )
            return
        if left != last:
            ctx.say(f"waiting: {left} jobs queued or running")
            last = left
        time.sleep(ctx.poll_s)


_PHASES: dict[str, Callable[[NightlyContext, nightly_repo.RunRow], None]] = {
    "ingest": ingest_inbox,
    "release": _release,
    "parked": _parked,
    "retry": _retry,
    "wait": _wait,
}


# ---- Celery ------------------------------------------------------------------------------


@app.task(name=TASK_NAME, ignore_result=True, acks_late=True)
def nightly_run(run_date: str | None = None) -> str:
    """The run beat sends at `nightly.time` (UTC), `run_date` filled in by beat.

    acks_late: a worker killed mid-run leaves the message to be redelivered, and the next
    delivery resumes the run. A copy delivered while the run is still going (the broker's
    visibility timeout is shorter than a long night) finds the lock held and returns "busy".
    """
    from workers.runtime import get_runtime
    from workers.sweeper import publish_ids

    rt = get_runtime()
    ctx = NightlyContext(rt.sessions, rt.engine, rt.config, publish_ids(rt.settings.broker_url))
    day = (
        date.fromisoformat(run_date)
        if run_date
        else scheduled_date(_utcnow(), rt.config.nightly.time)
    )
    # An earlier night that crashed where no redelivery could finish it: resume it first.
    with session_scope(ctx.sessions) as s:
        earlier = nightly_repo.unfinished_runs(s, ctx.name, before=day)
    for stale in earlier:
        log.info("nightly: resuming the unfinished run of %s", stale.run_date)
        run_nightly(ctx, stale.run_date)
    return run_nightly(ctx, day).status


def send_run(broker_url: str, run_date: date) -> str:
    """Hand the run for `run_date` to the workers, as beat does; returns the task id."""
    queue = next(q for q in app.amqp.queues.values() if q.name == CONTROL_QUEUE)
    with app.connection_for_write(broker_url) as conn:
        sent = app.send_task(
            TASK_NAME,
            kwargs={"run_date": run_date.isoformat()},
            queue=queue,
            declare=[queue],
            connection=conn,
        )
    return str(sent.id)
