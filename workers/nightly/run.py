"""One night's run, start to end: which night it belongs to, its phases in order, its lock.

Owns: `scheduled_date` (the night a run belongs to), the order of the phases (`PHASES`), the
per-night advisory lock and resuming a crashed run at its recorded phase (`run_nightly`).
Must not: do a phase's work (workers/nightly/inbox.py and phases.py do), write SQL
(core/ledger/nightly_repo.py does) or import the Celery app (workers/nightly/task.py sends
and receives the run; the CLI calls `run_nightly` in its own process). The phases are listed
in the package docstring (workers/nightly/__init__.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.ledger import nightly_repo
from core.ledger.db import session_scope
from workers.nightly import phases
from workers.nightly.context import NightlyContext, RunResult
from workers.nightly.inbox import ingest_inbox

log = logging.getLogger("workers.nightly")  # the run's log lines stay under one logger

PHASES = ("ingest", "release", "parked", "retry", "wait", "report")
# Every phase but the last, which also finishes the run (phases.report_phase).
_PHASE_WORK: dict[str, Callable[[NightlyContext, nightly_repo.RunRow], None]] = {
    "ingest": ingest_inbox,
    "release": phases.release_phase,
    "parked": phases.parked_phase,
    "retry": phases.retry_phase,
    "wait": phases.wait_phase,
}


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
            result.report, result.paths = phases.report_phase(ctx, run)
            result.status = "done"
        else:
            _PHASE_WORK[phase](ctx, run)
            with session_scope(ctx.sessions) as s:
                nightly_repo.set_phase(s, run.id, next_phase(phase))
        result.phases_run.append(phase)
        if phase == stop_after:
            break
    return result
