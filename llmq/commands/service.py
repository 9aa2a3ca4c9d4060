"""`llmq worker`: start a Celery worker for llmq's queues; `llmq beat`: start celery beat.

Owns: turning CLI options into the `celery -A workers worker ...` command line and exec'ing it,
so the worker is exactly what `celery -A workers worker` runs (signals, shutdown, logging).
Must not: import worker code (the exec'd process does), or decide pool settings that
workers/celeryconfig.py already holds; the flags here only make them explicit.
"""

from __future__ import annotations

import os
import sys
import tempfile

import typer

from core.names import CONTROL_QUEUE, JOB_QUEUE
from schemas.settings import load_settings


def worker_argv(
    concurrency: int,
    loglevel: str,
    hostname: str | None = None,
    extra: list[str] | None = None,
    queues: str | None = None,
) -> list[str]:
    """The celery command line `llmq worker` runs (also used by tests and docs)."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers",
        "worker",
        "--pool",
        "threads",  # I/O-bound provider calls: dozens of blocking httpx calls per process
        "--concurrency",
        str(concurrency),
        "--loglevel",
        loglevel,
        # Workers share nothing through Celery (the ledger fences duplicates), so skip the
        # startup sync and the gossip chatter between many worker processes.
        "--without-mingle",
        "--without-gossip",
    ]
    if hostname:
        argv += ["--hostname", hostname]
    if queues:  # default: every queue in celeryconfig (jobs and the control queue)
        argv += ["--queues", queues]
    return argv + list(extra or [])


DEFAULT_SCHEDULE_FILE = ".llmq/celerybeat-schedule"


def beat_schedule_path(path: str | None) -> str:
    """Where beat keeps its last-run times: `path`, else LLMQ_BEAT_SCHEDULE, else
    ./.llmq/celerybeat-schedule (or the temp dir when the working directory is read-only,
    as in the container; the nightly run's own guard lives in the ledger, not in this file)."""
    chosen = path or os.environ.get("LLMQ_BEAT_SCHEDULE") or DEFAULT_SCHEDULE_FILE
    folder = os.path.dirname(os.path.abspath(chosen))
    try:
        os.makedirs(folder, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    if writable or path:
        return chosen
    return os.path.join(tempfile.gettempdir(), "llmq-celerybeat-schedule")


def beat_argv(loglevel: str, schedule_file: str, extra: list[str] | None = None) -> list[str]:
    """The celery command line `llmq beat` runs. The entries come from celeryconfig's
    `beat_scheduler` (workers/beat.py, built as beat starts), so `celery -A workers beat`
    runs the same ones."""
    argv = [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel", loglevel]
    return argv + ["--schedule", schedule_file] + list(extra or [])


def register(app: typer.Typer) -> None:
    """Add `llmq worker` and `llmq beat` to the `llmq` app."""

    @app.command(
        "beat",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def beat(
        ctx: typer.Context,
        loglevel: str = typer.Option("INFO", "--loglevel", "-l", help="DEBUG, INFO, WARNING..."),
        schedule_file: str = typer.Option(
            None,
            "--schedule-file",
            "-s",
            help="Beat's state file. Default: LLMQ_BEAT_SCHEDULE or ./.llmq/celerybeat-schedule.",
        ),
    ) -> None:
        """Run celery beat: the sweeper every LLMQ_SWEEP_INTERVAL_S seconds, and the nightly run.

        Same as `celery -A workers beat`. One per deployment is enough; a second one is
        harmless (sweeps take a lock, the nightly run is guarded in the ledger). Further
        options are passed to celery unchanged.
        """
        argv = beat_argv(loglevel, beat_schedule_path(schedule_file), list(ctx.args))
        os.execv(argv[0], argv)

    @app.command(
        "worker",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def worker(
        ctx: typer.Context,
        concurrency: int = typer.Option(
            None,
            "--concurrency",
            "-c",
            min=1,
            help="Provider calls in flight at once (threads). Default: LLMQ_CONCURRENCY or 48.",
        ),
        loglevel: str = typer.Option("INFO", "--loglevel", "-l", help="DEBUG, INFO, WARNING..."),
        hostname: str = typer.Option(None, "--hostname", "-n", help="Worker node name."),
        queues: str = typer.Option(
            None,
            "--queues",
            "-Q",
            help=f"Comma-separated queues. Default: jobs ({JOB_QUEUE}) and periodic tasks "
            f"({CONTROL_QUEUE}).",
        ),
    ) -> None:
        """Run a worker: pulls job ids from Redis, calls providers, writes the ledger. Same as `celery -A workers worker --pool threads -c N`; further options go to celery unchanged."""
        settings = load_settings(os.environ)
        slots = concurrency or settings.worker_concurrency
        argv = worker_argv(slots, loglevel, hostname, list(ctx.args), queues)
        os.execv(argv[0], argv)
