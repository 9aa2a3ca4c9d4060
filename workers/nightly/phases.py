"""The nightly run's phases after ingest: release, parked, retry, wait, and report.

Owns: each phase's work. release/parked/retry hand jobs to the nightly tenant a chunk per
transaction and publish each chunk's ids after its commit; wait polls the ledger; report
gathers the run's figures (core/ledger/nightly_figures_repo.py), writes the report files
`nightly-YYYY-MM-DD.json` and `.md` in `nightly.report_dir` (each written whole, then renamed
into place) and marks the run `done` with its report. Must not: write SQL (core/ledger/ does),
build or render the report (workers/nightly/report.py, pure, does), or decide the order of
the phases (workers/nightly/run.py does). The ingest phase is workers/nightly/inbox.py.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.ledger import nightly_figures_repo, nightly_repo, quota_limits_repo
from core.ledger.db import session_scope
from schemas.job import ErrorKind, JobState
from workers.nightly.context import NightlyContext
from workers.nightly.report import RunInfo, build_report, render_markdown

log = logging.getLogger("workers.nightly")  # the run's log lines stay under one logger

RETRYABLE_KINDS = tuple(
    k.value
    for k in (
        ErrorKind.RATE_LIMITED,
        ErrorKind.UNAVAILABLE,
        ErrorKind.TIMEOUT,
        ErrorKind.ATTEMPTS_EXHAUSTED,
        # a reply that did not fit its schema: sampling again often does (bounded like the rest)
        ErrorKind.INVALID_OUTPUT,
    )
)
CHUNK = 2000  # jobs handed over per transaction (and per publish)


def _deadline(ctx: NightlyContext) -> datetime | None:
    """When the run's jobs must be done, if they may wait for a batch lane (issue 18)."""
    nightly = ctx.config.nightly
    if not nightly.batch_lane:
        return None
    return ctx.clock() + timedelta(hours=nightly.deadline_h)


# ---- release, parked, retry: jobs handed to the nightly tenant and published --------------


def _publish(ctx: NightlyContext, ids: Sequence[uuid.UUID]) -> None:
    if not ids:
        return
    try:
        ctx.publish(ids)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweeper re-sends them
        log.warning("nightly: could not publish %d job ids (the sweeper will): %s", len(ids), exc)


def _queue_in_chunks(
    ctx: NightlyContext, what: str, take: Callable[[Session], list[uuid.UUID]]
) -> int:
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
        _, day_tokens = quota_limits_repo.get_limits(s, nightly.tenant)["day"]
        quota_limits_repo.set_limits(s, nightly.tenant, "day", nightly.budget_usd, day_tokens, now)


def release_phase(ctx: NightlyContext, run: nightly_repo.RunRow) -> None:
    """The budget becomes the nightly tenant's day limit; deferred jobs -> queued."""
    now = ctx.clock()
    _apply_budget(ctx, now)
    tenant = ctx.config.nightly.tenant
    with session_scope(ctx.sessions) as s:
        inbox = nightly_repo.inbox_batches(s, run.id)
    _queue_in_chunks(
        ctx,
        "deferred",
        lambda s: nightly_repo.release_deferred(
            s, run.id, tenant, inbox, ctx.clock(), CHUNK, _deadline(ctx)
        ),
    )


def parked_phase(ctx: NightlyContext, run: nightly_repo.RunRow) -> None:
    """quota_exceeded jobs whose window has reset -> queued under the nightly tenant."""
    tenant = ctx.config.nightly.tenant
    _queue_in_chunks(
        ctx,
        "parked",
        lambda s: nightly_repo.requeue_parked(
            s, run.id, tenant, ctx.clock(), CHUNK, _deadline(ctx)
        ),
    )


def retry_phase(ctx: NightlyContext, run: nightly_repo.RunRow) -> None:
    """Failed jobs of a retryable kind, under `nightly.retry_failed_max` re-runs -> queued."""
    nightly = ctx.config.nightly
    _queue_in_chunks(
        ctx,
        "retryable failures",
        lambda s: nightly_repo.retry_failed(
            s,
            run.id,
            nightly.tenant,
            RETRYABLE_KINDS,
            nightly.retry_failed_max,
            ctx.clock(),
            CHUNK,
            _deadline(ctx),
        ),
    )


# ---- wait --------------------------------------------------------------------------------


def wait_phase(ctx: NightlyContext, run: nightly_repo.RunRow) -> None:
    """Poll until none of the run's jobs is queued or running, or `ctx.wait_timeout_s`."""
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


# ---- report ------------------------------------------------------------------------------


def report_phase(
    ctx: NightlyContext, run: nightly_repo.RunRow
) -> tuple[dict[str, Any], list[Path]]:
    """Figures from the ledger -> files (rewritten whole on a resume) -> the row, done."""
    now = ctx.clock()
    nightly = ctx.config.nightly
    with session_scope(ctx.sessions) as s:
        figures = nightly_figures_repo.run_figures(s, run.id, run.started_at, nightly.tenant)
        complete = nightly_repo.open_jobs(s, run.id) == 0
        previous = nightly_repo.latest_run(s, ctx.name, before=run.run_date)
    info = RunInfo(
        run.name, run.run_date, nightly.tenant, nightly.budget_usd, run.started_at, now, complete
    )
    states = [s.value for s in JobState]
    report = build_report(info, figures, states, previous.report if previous else None)
    try:
        paths = write_report_files(Path(nightly.report_dir), report)
    except OSError as exc:  # the ledger keeps the report: `llmq nightly report` shows it
        log.error(
            "nightly %s: report files not written to %s: %s", run.run_date, nightly.report_dir, exc
        )
        paths = []
    with session_scope(ctx.sessions) as s:
        nightly_repo.finish_run(s, run.id, report, now)
    ctx.say(f"report: {', '.join(str(p) for p in paths) or 'in the ledger only'}")
    return report, paths


def report_paths(report_dir: Path, run_date: date) -> tuple[Path, Path]:
    stem = f"nightly-{run_date.isoformat()}"
    return report_dir / f"{stem}.json", report_dir / f"{stem}.md"


def write_report_files(report_dir: Path, report: dict[str, Any]) -> list[Path]:
    """`nightly-YYYY-MM-DD.json` and `.md`, each written whole then renamed into place."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = report_paths(report_dir, date.fromisoformat(report["run_date"]))
    bodies = (json.dumps(report, indent=2) + "\n", render_markdown(report))
    for path, body in zip(paths, bodies, strict=True):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)
    return list(paths)
