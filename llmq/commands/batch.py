"""`llmq submit`, `status`, `results`, `cancel`, `resume`, `job`: the producer's batch commands.

Owns: argument parsing, rendering and exit codes; all work goes through `producer.client.Client`,
given the provider registry's capabilities (`llmq.capabilities`) so submit rejects a line no
deployment can serve. Must not: query the database or the broker directly, or import provider
code (beyond that resolver).

Exit codes: 0 ok; 1 the batch finished with failed, cancelled or parked jobs (`--wait`), or no
such batch/job; 2 bad input file or option (nothing was written); 3 the batch IS stored but
not every job could be enqueued (the sweeper sends the rest: do not resubmit).
Money is printed as USD strings with exactly 8 decimal places, in tables and in JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from core.ledger.batch_reads_repo import BatchStatus, JobTimeline
    from producer.client import Client

EXIT_UNFINISHED, EXIT_INPUT, EXIT_NOT_ENQUEUED = 1, 2, 3


def register(app: typer.Typer) -> None:
    """Add the batch commands to the `llmq` app."""
    for command in (submit, status, results, cancel, resume, job):
        app.command(command.__name__)(command)


def _err(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def _client() -> Iterator[Client]:
    """A Client whose expected failures become a message and an exit code, not a traceback."""
    from sqlalchemy.exc import OperationalError

    from core.errors import ConfigError
    from llmq.capabilities import attach
    from producer.client import Client, EnqueueFailed, InputError, NotFound

    handlers: list[tuple[type[BaseException], int, Callable[[Any], str]]] = [
        (InputError, EXIT_INPUT, str),
        (ConfigError, EXIT_INPUT, lambda e: f"config error: {e}"),
        (ValueError, EXIT_INPUT, lambda e: f"error: {e}"),
        (NotFound, EXIT_UNFINISHED, lambda e: f"error: {e.args[0]}"),
        (EnqueueFailed, EXIT_NOT_ENQUEUED, lambda e: f"warning: {e}"),
        (OperationalError, EXIT_UNFINISHED, lambda e: f"database unreachable: {e.orig}"),
    ]
    client = attach(Client())
    try:
        yield client
    except tuple(h[0] for h in handlers) as exc:
        code, render = next((c, r) for t, c, r in handlers if isinstance(exc, t))
        _err(render(exc))
        raise typer.Exit(code) from None
    finally:
        client.close()


def submit(  # noqa: PLR0913 - one parameter per CLI flag (issue 3)
    file: Annotated[Path, typer.Argument(help="JSONL file: native or OpenAI Batch lines.")],
    name: Annotated[str | None, typer.Option("--name", help="A label for the batch.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Whose quota pays.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model for lines that name none.")
    ] = None,
    max_cost: Annotated[str | None, typer.Option("--max-cost", help="Batch budget in USD.")] = None,
    nightly: Annotated[
        bool, typer.Option("--nightly", help="Defer the jobs to the nightly run.")
    ] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Never answer from the cache.")
    ] = False,
    deadline: Annotated[
        str | None,
        typer.Option("--deadline", help="Done within (24h, 90m, 2d): may use batch lanes."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress until nothing can move.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"batch_id": ...} (or status).')
    ] = False,
) -> None:
    """Validate every line, store the batch and its jobs, enqueue them."""
    with _client() as client:
        result = client.submit_detailed(
            file,
            name,
            tenant,
            model,
            max_cost,
            nightly=nightly,
            use_cache=not no_cache,
            deadline=deadline,
        )
        t = result.timings
        _err(
            f"{result.jobs} jobs {result.state}: parse {t['parse_s']:.2f}s, "
            f"insert {t['insert_s']:.2f}s, enqueue {t['enqueue_s']:.2f}s"
        )
        if not wait:
            typer.echo(
                json.dumps({"batch_id": str(result.batch_id)}) if as_json else result.batch_id
            )
            return
        if not as_json:
            typer.echo(result.batch_id)
        final = _wait(client, result.batch_id, result.jobs)
        if as_json:
            typer.echo(json.dumps(final.to_json()))
        else:
            _print_status(final)
    _exit_for(final)


def _wait(client: Client, batch_id: Any, total: int) -> BatchStatus:
    from producer.progress import BatchProgress

    with BatchProgress(total) as bar:
        return client.wait(batch_id, progress=bar)


def _exit_for(final: BatchStatus) -> None:
    if final.all_succeeded:
        return
    c = final.counts
    _err(
        f"not all jobs succeeded: {c['failed']} failed, {c['cancelled']} cancelled, "
        f"{final.parked} parked ({c['quota_exceeded']} quota_exceeded, {c['deferred']} deferred)"
        + ("; `llmq resume` re-queues parked jobs" if final.parked else "")
    )
    raise typer.Exit(EXIT_UNFINISHED)


def status(
    batch: Annotated[str, typer.Argument(help="Batch id (or a unique prefix).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable status.")] = False,
) -> None:
    """A batch's counts by state, tokens, cost, providers and cache savings."""
    with _client() as client:
        st = client.get_batch(batch)
    if as_json:
        typer.echo(json.dumps(st.to_json()))
    else:
        _print_status(st)


def results(
    batch: Annotated[str, typer.Argument(help="Batch id (or a unique prefix).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE.")] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", help="llmq (default) or openai: OpenAI Batch output lines."),
    ] = "llmq",
) -> None:
    """One JSON line per input line, in input order (streamed)."""
    from core.jsonl_write import write_jsonl
    from llmq.results_file import ResultsNotWritten, write_results
    from producer.openai_format import OPENAI_FORMAT, RESULT_FORMATS

    if fmt not in RESULT_FORMATS:
        _err(f"error: --format must be llmq or openai, not {fmt!r}")
        raise typer.Exit(EXIT_INPUT)
    with _client() as client:
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        if fmt == OPENAI_FORMAT:
            created = int(client.get_batch(batch).created_at.timestamp())
            transform = partial(_openai_line, created=created)
        if output is None:
            lines = client.iter_results(batch)
            write_jsonl(lines if transform is None else map(transform, lines), sys.stdout)
            return
        try:
            n = write_results(client, batch, output, transform)
        except ResultsNotWritten as exc:
            _err(f"error: {exc}")
            raise typer.Exit(EXIT_UNFINISHED) from None
        _err(f"wrote {n} results to {output}")


def _openai_line(result: dict[str, Any], created: int) -> dict[str, Any]:
    from producer.openai_format import openai_line

    return openai_line(result, created)[0]


def cancel(batch: str = typer.Argument(..., help="Batch id (or a unique prefix).")) -> None:
    """Cancel queued, deferred and parked jobs; running jobs finish."""
    with _client() as client:
        res = client.cancel(batch)
    typer.echo(f"cancelled {res.cancelled} jobs; {res.running} running will finish")


def resume(batch: str = typer.Argument(..., help="Batch id (or a unique prefix).")) -> None:
    """Re-queue parked (quota_exceeded) and deferred jobs and enqueue them."""
    with _client() as client:
        n = client.resume(batch)
    typer.echo(f"re-queued {n} jobs")


def job(
    job_id: Annotated[str, typer.Argument(help="Job id (as in `llmq results`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable timeline.")] = False,
) -> None:
    """One job's timeline: every attempt, where it went, what happened, what it cost."""
    with _client() as client:
        timeline = client.job(job_id)
    if as_json:
        typer.echo(
            json.dumps({"job": timeline.job, "attempts": timeline.attempts}, default=_jsonable)
        )
    else:
        _print_timeline(timeline)


# --- rendering ----------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    from decimal import Decimal

    from core.money import money_str

    if isinstance(value, Decimal):
        return money_str(value)
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _print_status(st: BatchStatus) -> None:
    from rich.console import Console
    from rich.table import Table

    data = st.to_json()
    console = Console()
    title = f"batch {data['batch_id']}" + (f" ({st.name})" if st.name else "")
    console.print(f"[bold]{title}[/]")
    console.print(f"tenant {st.tenant}  state [bold]{st.state}[/]  created {data['created_at']}")
    counts = Table("state", "jobs", box=None)
    for state_name, n in data["counts"].items():
        counts.add_row(state_name, str(n))
    counts.add_row("[bold]total", f"[bold]{st.total}")
    console.print(counts)
    u = data["usage"]
    console.print(f"tokens: {u['prompt_tokens']} prompt + {u['completion_tokens']} completion")
    console.print(
        f"cost: ${data['cost_usd']}"
        + (f" of ${data['max_cost_usd']} budget" if st.max_cost_usd is not None else "")
        + (f" ({st.unpriced_attempts} attempts unpriced)" if st.unpriced_attempts else "")
    )
    console.print(f"cache: {st.cache_hits} hits, ${data['cache']['saved_usd']} saved")
    if data.get("lanes"):
        lanes = data["lanes"]
        sync, batch = lanes["sync"], lanes["batch"]
        console.print(
            f"lanes: sync {sync['attempts']} attempts ${sync['cost_usd']}; batch "
            f"{batch['attempts']} attempts ${batch['cost_usd']}; saved by batch lanes "
            f"${lanes['saved_usd']}"
        )
    if data["providers"]:
        providers = Table("provider", "jobs served", "attempts", "cost USD", box=None)
        for p, s in data["providers"].items():
            providers.add_row(p, str(s["jobs"]), str(s["attempts"]), s["cost_usd"])
        console.print(providers)


# Provider text (error messages, echoed bodies) may carry terminal escapes and line breaks:
# the human format shows them as escapes, so a reply can neither repaint the terminal nor fake
# a line of the timeline. `--json` prints the stored text exactly.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def printable(value: Any) -> str:
    """`value` as text with control and line-breaking characters shown as escapes."""
    return ("" if value is None else str(value)).translate(_ESCAPES)


def _print_timeline(t: JobTimeline) -> None:
    """One block per attempt: reads the same in a terminal, a pipe or a narrow window."""
    j = {k: (v if k in ("created_at", "finished_at", "error") else printable(v))
         for k, v in t.job.items()}  # fmt: skip
    typer.echo(f"job {j['id']}  custom_id {t.job['custom_id']!r}")
    typer.echo(f"  batch {j['batch_id']}  tenant {j['tenant']}  model {j['model']}")
    typer.echo(
        f"  state {j['state']}  attempts {j['attempts']}  created {_jsonable(j['created_at'])}"
        + (f"  finished {_jsonable(j['finished_at'])}" if j["finished_at"] else "")
    )
    if not t.attempts:
        typer.echo("no attempts yet")
    for a in t.attempts:
        started = _jsonable(a["started_at"]) if a["started_at"] else "?"
        http = f"  http {a['http_status']}" if a["http_status"] else ""
        where = printable(f"{a['provider']}/{a['model']} ({a['deployment']})")
        typer.echo(f"#{a['attempt_no']}  {started}  {where}  {printable(a['outcome'])}{http}")
        latency = "?" if a["latency_ms"] is None else a["latency_ms"]
        cost = "unknown" if a["cost_usd"] is None else "$" + _jsonable(a["cost_usd"])
        typer.echo(
            f"    waited {a['waited_ms']} ms  latency {latency} ms  tokens "
            f"{a['prompt_tokens']} in / {a['completion_tokens']} out  cost {cost}"
        )
        if a.get("lane") == "batch":  # issue 18: which provider batch it went into
            batch_id = printable(a.get("provider_batch_id") or "(not yet sent)")
            typer.echo(f"    lane batch  provider batch {batch_id}")
        if a["error_kind"] or a["error_message"]:
            typer.echo(f"    error {printable(a['error_kind'])}: {printable(a['error_message'])}")
    if j["error"]:
        e = j["error"]
        typer.echo(f"final error {printable(e.get('type'))}: {printable(e.get('message'))}")
