"""`llmq nightly run [--now] [--date D]` and `llmq nightly report [--date D] [--json]`.

Owns: these commands' options and output. Must not: run any phase or query itself (workers/
nightly/ runs the night, core/ledger/nightly_repo.py reads it), or import provider code
(workers.nightly does not).

`run --now` runs the night here, in this process, and waits for the workers to finish its
jobs; without `--now` it hands the run to the workers (the `llmq.nightly_run` task, exactly what
beat sends at `nightly.time`) and returns. Either way a date's run happens once: a second
trigger finds it done and does nothing; a run interrupted by a crash is resumed.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schemas.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

EXIT_NOT_FOUND, EXIT_BUSY = 1, 3

DateOption = Annotated[
    str | None,
    typer.Option("--date", help="The run's UTC date, YYYY-MM-DD (default: today, UTC)."),
]


def _parse_date(text: str | None) -> date:
    if text is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date (YYYY-MM-DD)", param_hint="--date"
        ) from None


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    from core.ledger.db import make_engine
    from llmq.unreachable import unreachable_exit

    engine = make_engine(settings.database_url, pool_size=2)
    try:
        with unreachable_exit(settings):  # the ledger down: one line, exit 2
            yield engine
    finally:
        engine.dispose()


def run(
    now: Annotated[
        bool, typer.Option("--now", help="Run it here and now (else: send it to the workers).")
    ] = False,
    when: DateOption = None,
) -> None:
    """Trigger the nightly run: deferred jobs, the inbox, parked jobs, retryable failures."""
    from core.errors import ConfigError
    from workers.providers.config import load_config

    settings = load_settings(os.environ)
    day = _parse_date(when)
    try:
        config = load_config(settings.config_path)
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not now:
        from llmq.unreachable import unreachable_exit
        from workers.nightly.task import send_run

        with unreachable_exit(settings):
            task_id = send_run(settings.broker_url, day)
        typer.echo(f"nightly run {day} sent to the workers (task {task_id})")
        return
    from core.ledger.db import make_sessionmaker
    from workers.nightly.context import NightlyContext
    from workers.nightly.run import run_nightly

    with _engine(settings) as engine:
        ctx = NightlyContext(
            make_sessionmaker(engine),
            engine,
            config,
            publish=lambda ids: _publish(settings.broker_url, ids),
            progress=lambda line: typer.echo(line, err=True),
        )
        result = run_nightly(ctx, day)
    if result.status == "busy":
        typer.echo(f"nightly run {day} is being run by another process", err=True)
        raise typer.Exit(EXIT_BUSY)
    if result.status == "already_done":
        typer.echo(f"nightly run {day} already ran; see `llmq nightly report --date {day}`")
        return
    typer.echo(_headline(result.report or {}))
    for path in result.paths:
        typer.echo(f"  {path}")


def _publish(broker_url: str, ids: Sequence[uuid.UUID]) -> None:
    from core.publish import JOBS_PER_MESSAGE, enqueue_job_ids

    enqueue_job_ids(broker_url, ids, per_message=JOBS_PER_MESSAGE)


def _headline(report: dict[str, Any]) -> str:
    jobs, usage = report.get("jobs", {}), report.get("usage", {})
    by_state = jobs.get("by_state", {})
    return (
        f"nightly run {report.get('run_date')}: {jobs.get('total', 0)} jobs, "
        f"{by_state.get('succeeded', 0)} succeeded, {by_state.get('failed', 0)} failed, "
        f"{by_state.get('quota_exceeded', 0)} parked; {usage.get('total_tokens', 0)} tokens, "
        f"{usage.get('cost_usd', '0')} USD"
    )


def report(
    when: DateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Show a night's report (default: the latest finished run)."""
    from core.ledger import nightly_repo
    from core.ledger.db import make_sessionmaker, session_scope
    from workers.nightly.context import RUN_NAME
    from workers.nightly.report import render_markdown

    settings = load_settings(os.environ)
    day = None if when is None else _parse_date(when)
    with _engine(settings) as engine, session_scope(make_sessionmaker(engine)) as session:
        if day is None:
            run_row = nightly_repo.latest_run(session, RUN_NAME)
        else:
            run_row = nightly_repo.get_run(session, RUN_NAME, day)
    if run_row is None:
        typer.echo(f"no nightly run {'yet' if day is None else f'for {day}'}", err=True)
        raise typer.Exit(EXIT_NOT_FOUND)
    if run_row.report is None:
        typer.echo(
            f"nightly run {run_row.run_date} has not finished (next phase: {run_row.phase})",
            err=True,
        )
        raise typer.Exit(EXIT_NOT_FOUND)
    if as_json:
        typer.echo(json.dumps(run_row.report, indent=2))
    else:
        typer.echo(render_markdown(run_row.report), nl=False)


def register(app: typer.Typer) -> None:
    """Add `llmq nightly run` and `llmq nightly report` to the `llmq` app."""
    nightly_app = typer.Typer(
        help="The nightly backlog run: trigger it, read its report.", no_args_is_help=True
    )
    nightly_app.command("run")(run)
    nightly_app.command("report")(report)
    app.add_typer(nightly_app, name="nightly")
