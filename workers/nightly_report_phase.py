"""The nightly run's report phase: figures from the ledger -> report files -> the run, done.

Owns: gathering the run's figures through the ledger (nightly_report_repo), the report files
`nightly-YYYY-MM-DD.json` and `.md` in `nightly.report_dir` (each written whole, then renamed
into place), and marking the run `done` with its report. Must not: write SQL (core/ledger/
does), build or render the report itself (workers/nightly_report.py, pure, does), or decide
the order of the run's phases (workers/nightly.py does).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.ledger import nightly_repo, nightly_report_repo
from core.ledger.db import session_scope
from schemas.job import JobState
from workers.nightly_report import RunInfo, build_report, render_markdown

if TYPE_CHECKING:
    from workers.nightly import NightlyContext

log = logging.getLogger("workers.nightly")  # the run's log lines stay under one logger


def report_phase(
    ctx: NightlyContext, run: nightly_repo.RunRow
) -> tuple[dict[str, Any], list[Path]]:
    """Figures from the ledger -> files (rewritten whole on a resume) -> the row, done."""
    now = ctx.clock()
    nightly = ctx.config.nightly
    with session_scope(ctx.sessions) as s:
        figures = nightly_report_repo.run_figures(s, run.id, run.started_at)
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
