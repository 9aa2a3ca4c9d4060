"""`llmq demo` and `llmq run FILE.jsonl`: a whole batch in one command, with no servers.

Owns: these two commands: choosing the config and the simulator, submitting through the
producer `Client`, the progress bar, writing the results file, printing the summary (rich
tables, or JSON with `--json`; llmq/demo_summary.py renders both) and the exit code.
Must not: run jobs itself or take a shortcut around the pipeline: the work happens in
`llmq.embedded`, which is the production worker on in-process parts (SQLite ledger,
`memory://` broker, threads pool), or, with `run --external`, in the workers already serving
LLMQ_DATABASE_URL / LLMQ_BROKER_URL.

`llmq run` is always embedded unless `--external` is given: an LLMQ_* variable exported for
other commands never silently turns it into "submit and wait for workers that may not run".

Exit codes: 0 every job succeeded; 1 some job did not (failed, cancelled or parked);
2 bad input file, option or config (nothing was submitted); 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmq.demo_summary import Report, print_report, report_json
from llmq.results_file import check_output, write_results

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from core.ledger.batch_reads_repo import BatchStatus
    from producer.client import Client
    from schemas.config import LLMConfig
    from simulator.config import SimConfig

EXIT_UNFINISHED, EXIT_INPUT, EXIT_INTERRUPTED = 1, 2, 130
DEMO_CONFIG = Path(__file__).resolve().parent.parent / "demo_config.yaml"
DEFAULT_LEDGER = Path(".llmq") / "ledger.db"  # = llmq.embedded.DEFAULT_LEDGER
LOG_NAME = "llmq.log"

Ledger = Annotated[
    Path, typer.Option("--ledger", help="SQLite ledger file (created and migrated if new).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]


def register(app: typer.Typer) -> None:
    """Add `demo` and `run` to the `llmq` app."""
    app.command("demo")(demo)
    app.command("run")(run)


# --- commands -------------------------------------------------------------------------------


def demo(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=256, help="Calls in flight.")
    ] = 16,
    ledger: Ledger = DEFAULT_LEDGER,
    as_json: AsJson = False,
) -> None:
    """Run a ~75-line demo batch on the built-in provider simulator: no servers, no keys.

    The simulator takes one provider down and injects 429s and 500s, so the summary shows
    cost-based routing, retries and fallback. Input, results and ledger go to ./.llmq/.
    """
    from llmq.demo_data import write_demo_file

    config, sim_config = _load_demo_config()
    source = ledger.parent / "demo.jsonl"
    write_demo_file(source)
    report = _guarded(
        lambda: _run_embedded(
            "llmq demo",
            source,
            ledger.parent / "demo.results.jsonl",
            config,
            ledger=ledger,
            concurrency=concurrency,
            simulate=True,
            sim_config=sim_config,
        )
    )
    _finish(report, as_json)


def run(  # noqa: PLR0913 - one parameter per CLI flag
    file: Annotated[Path, typer.Argument(help="JSONL file: native or OpenAI Batch lines.")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Results JSONL (default: FILE.results.jsonl)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model for lines that name none.")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Whose quota pays.")] = None,
    max_cost: Annotated[str | None, typer.Option("--max-cost", help="Batch budget in USD.")] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=256, help="Calls in flight.")
    ] = 32,
    ledger: Ledger = DEFAULT_LEDGER,
    simulate: Annotated[
        bool | None,
        typer.Option(
            "--simulate/--no-simulate",
            help="Use the built-in provider simulator (default: only if no API key is set).",
        ),
    ] = None,
    external: Annotated[
        bool,
        typer.Option(
            "--external",
            help="Use LLMQ_DATABASE_URL / LLMQ_BROKER_URL and the workers serving them.",
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the last run of FILE in the ledger (after Ctrl-C): only its "
            "unfinished jobs run; then the results file is written as usual.",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Run every line of FILE and write the results, in one command (e.g. a nightly cron).

    Embedded by default: the same pipeline (tasks, routing, retries, quota, ledger) on a
    SQLite ledger (--ledger), an in-process broker and a worker pool of --concurrency
    threads; no Postgres, Redis or worker needed. Real providers are called when an API key
    is configured (OPENAI_API_KEY, ... or llm_config.yaml); with none, the built-in simulator
    answers. With --external the batch goes to the servers in LLMQ_DATABASE_URL and
    LLMQ_BROKER_URL instead, and `llmq worker` processes must be running.
    """
    output = output or file.with_name(file.name + ".results.jsonl")
    options: dict[str, Any] = {"model": model, "tenant": tenant, "max_cost": max_cost}
    _guarded(lambda: check_output(output, file))  # before any call is paid for
    if resume:
        _guarded(lambda: _check_resumable(external, ledger, model, tenant, max_cost))
        options["resume"] = True
    if external:
        report = _guarded(lambda: _run_external(file, output, **options))
    else:
        report = _guarded(
            lambda: _run_embedded(
                "llmq run",
                file,
                output,
                _load_user_config(),  # inside _guarded: a bad config is exit code 2
                ledger=ledger,
                concurrency=concurrency,
                simulate=simulate,
                **options,
            )
        )
    _finish(report, as_json)


# --- running --------------------------------------------------------------------------------


def _run_embedded(  # noqa: PLR0913 - the run's whole description, passed through once
    title: str,
    source: Path,
    output: Path,
    config: LLMConfig,
    *,
    ledger: Path,
    concurrency: int,
    simulate: bool | None,
    sim_config: SimConfig | None = None,
    model: str | None = None,
    tenant: str | None = None,
    max_cost: str | None = None,
    resume: bool = False,
) -> Report:
    from core.jsonl import validate_file
    from llmq.embedded import start_embedded

    jobs = None if resume else validate_file(source, config, model)  # before any ledger
    log = _log_to_file(ledger.parent / LOG_NAME, config)
    started = time.monotonic()
    with start_embedded(
        config, ledger=ledger, concurrency=concurrency, simulate=simulate, sim_config=sim_config
    ) as emb:
        if emb.simulator is not None and simulate is None:
            _say("no API key configured: the built-in simulator answers (synthetic replies). "
                 "Export a provider key, or pass --no-simulate to call local servers.")  # fmt: skip
        startup = time.monotonic() - started
        with emb.client() as client:
            status, written, took = _submit_wait_write(
                client, source, output, model, tenant, max_cost, resume=resume,
                feed=(emb.runtime.sessions, 4 * concurrency), validated_jobs=jobs,
            )  # fmt: skip
            usage = emb.usage(status.created_at)
        sim = emb.simulator_stats()
        return Report(title, status, usage, output, written, str(ledger), log, sim, took, startup)


def _run_external(  # noqa: PLR0913 - the run's options, passed through once
    source: Path,
    output: Path,
    model: str | None,
    tenant: str | None,
    max_cost: str | None,
    resume: bool = False,
) -> Report:
    from core.ledger.db import session_scope
    from core.ledger.usage_repo import usage_report
    from llmq.capabilities import attach
    from producer.client import Client

    with attach(Client()) as client:
        status, written, took = _submit_wait_write(
            client, source, output, model, tenant, max_cost, resume=resume
        )
        with session_scope(client.sessions) as session:
            usage = usage_report(session, status.created_at, by=("provider", "model"))
        ledger = _hide_password(client.database_url)
    return Report("llmq run --external", status, usage, output, written, ledger, None, None, took)


def _submit_wait_write(  # noqa: PLR0913 - the run, passed through once
    client: Client,
    source: Path,
    output: Path,
    model: str | None,
    tenant: str | None,
    max_cost: str | None,
    *,
    resume: bool = False,
    feed: tuple[sessionmaker[Session], int] | None = None,
    validated_jobs: int | None = None,
) -> tuple[BatchStatus, int, float]:
    """Submit `source` (or, with `resume`, re-send its last batch's unfinished jobs), show
    progress until the batch settles, write its results in order.

    `feed` (embedded runs: the runtime's sessions, a backlog): publish the ids through a
    `Feeder` that keeps at most that many messages in the in-process queue, instead of all at
    once. It uses the runtime's sessions, which take turns on the SQLite file with the
    worker threads (`llmq.embedded.serialize_sqlite`), never a second writer beside them.
    Returns the final status, the result lines written and the seconds all that took."""
    from llmq.embedded_feed import Feeder
    from producer.progress import BatchProgress

    started = time.monotonic()
    enqueue = feed is None
    if resume:
        result = client.continue_file(source, enqueue=enqueue)
        _say(f"resuming batch {result.batch_id} ({result.jobs} jobs): its unfinished jobs run")
    else:
        result = client.submit_detailed(source, name=source.name, tenant=tenant, model=model,
                                        max_cost_usd=max_cost, enqueue=enqueue,
                                        validated_jobs=validated_jobs)  # fmt: skip
    feeder = None
    if feed is not None:
        feeder = Feeder(feed[0], client.broker_url, result.batch_id, feed[1])
        feeder.start()
    try:
        with BatchProgress(result.jobs, label=source.name) as bar:
            status = client.wait(result.batch_id, progress=bar, poll_s=0.25)
    finally:
        if feeder is not None:
            feeder.stop()
    written = write_results(client, result.batch_id, output)
    return status, written, time.monotonic() - started


def _guarded(work: Any) -> Any:
    """Run `work`; expected failures become a message and an exit code, not a traceback."""
    from sqlalchemy.exc import OperationalError

    from core.errors import ConfigError
    from llmq.results_file import ResultsNotWritten
    from producer.client import EnqueueFailed, InputError, NotFound

    handlers: list[tuple[type[BaseException], int, str]] = [
        (InputError, EXIT_INPUT, "{}"),
        (NotFound, EXIT_INPUT, "error: {}"),
        (ResultsNotWritten, EXIT_UNFINISHED, "error: {}"),
        (ConfigError, EXIT_INPUT, "config error: {}"),
        (ValueError, EXIT_INPUT, "error: {}"),
        (EnqueueFailed, EXIT_UNFINISHED, "warning: {}"),  # --external, broker down
        (OperationalError, EXIT_UNFINISHED, "database error: {}"),
        (KeyboardInterrupt, EXIT_INTERRUPTED, "interrupted: the ledger keeps every job{}"),
    ]
    try:
        return work()
    except tuple(h[0] for h in handlers) as exc:
        code, text = next((c, t) for kind, c, t in handlers if isinstance(exc, kind))
        _say(text.format("" if isinstance(exc, KeyboardInterrupt) else exc))
        raise typer.Exit(code) from None


def _check_resumable(
    external: bool, ledger: Path, model: str | None, tenant: str | None, max_cost: str | None
) -> None:
    """--resume continues what the ledger holds: options that would change the batch, or a
    ledger that does not exist, are refused before anything starts."""
    if any(v is not None for v in (model, tenant, max_cost)):
        raise ValueError("--resume keeps the batch as submitted: drop --model/--tenant/--max-cost")
    if not external and not ledger.exists():
        raise ValueError(f"--resume: no ledger at {ledger}; run the file without --resume")


# --- configuration --------------------------------------------------------------------------


def _load_demo_config(path: Path = DEMO_CONFIG) -> tuple[LLMConfig, SimConfig]:
    """llmq/demo_config.yaml: its `config` (an llm_config) and its `simulator` section."""
    from core.config_file import read_yaml, validate
    from simulator.config import SimConfig

    data = read_yaml(path)
    return validate(data.get("config") or {}, path), SimConfig.from_dict(data.get("simulator"))


def _load_user_config() -> LLMConfig:
    from workers.providers.config import load_config

    return load_config()


def _log_to_file(path: Path, config: LLMConfig) -> Path:
    """Worker logs (retries, failures) go to a file: the terminal keeps the progress bar."""
    from schemas.settings import load_settings
    from workers.observability.logs import setup_logging
    from workers.observability.redaction import config_secrets, env_secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    secrets = [*env_secrets(os.environ), *config_secrets(config)]
    as_json = load_settings(os.environ).log_json or config.monitoring.log_json
    setup_logging(logfile=str(path), secrets=secrets, json_lines=as_json)
    # Celery's two lines per task (received, succeeded) would be most of the file, and cost
    # CPU the worker threads share; the pipeline's own lines say what happened to each job.
    for chatty in ("celery.worker.strategy", "celery.app.trace", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    return path


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- output ---------------------------------------------------------------------------------


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _finish(report: Report, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report_json(report)))
    else:
        print_report(report)
    if not report.status.all_succeeded:
        raise typer.Exit(EXIT_UNFINISHED)
