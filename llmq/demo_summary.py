"""The summary `llmq demo` and `llmq run` print when a batch has settled.

Owns: `Report` (what a finished run prints) and its two renderings: the `--json` dict
(`report_json`) and the rich tables for humans (`print_report`). Must not: run, submit or
wait for anything, choose the exit code (llmq/commands/demo.py does), or import worker
or provider code at import time (the CLI imports this module).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.ledger.batch_reads_repo import BatchStatus
    from core.ledger.usage_repo import UsageRow


@dataclass
class Report:
    """What a finished run prints."""

    title: str
    status: BatchStatus
    usage: list[UsageRow]  # attempts of this run by provider and model
    results: Path
    written: int
    ledger: str  # a file path (embedded) or a database URL (external)
    log: Path | None
    simulator: dict[str, Any] | None  # the simulator's own counts, when it served the calls
    elapsed_s: float  # submit to results written, seconds
    startup_s: float = 0.0  # embedded: ledger migration, simulator, worker start


def report_json(report: Report) -> dict[str, Any]:
    """The `--json` summary: the batch status (as `llmq status --json`) plus this run's
    attempts by provider and model, the simulator's counts, and where everything is."""
    from core.money import money_str

    counts = ("attempts", "succeeded", "failed", "cache_hits", "prompt_tokens", "completion_tokens")
    by_provider_model = [
        {**r.group, **{k: getattr(r, k) for k in counts}, "cost_usd": money_str(r.cost_usd)}
        for r in report.usage
    ]
    return {
        "batch": report.status.to_json(),
        "by_provider_model": by_provider_model,
        "simulator": report.simulator,
        "results_file": str(report.results),
        "results_written": report.written,
        "ledger": report.ledger,
        "log_file": str(report.log) if report.log else None,
        "elapsed_s": round(report.elapsed_s, 3),
        "startup_s": round(report.startup_s, 3),
    }


def print_report(report: Report) -> None:
    """The human summary: jobs by state, attempts/tokens/cost by provider and model, paths."""
    from rich.console import Console

    # Not a terminal (a file, CI, cron mail): 120 columns, so model names are not cut.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    st = report.status
    startup = f", start-up {report.startup_s:.1f} s" if report.startup_s else ""
    console.print(
        f"\n[bold]{report.title}[/]: {st.total} jobs in {report.elapsed_s:.1f} s{startup}  "
        f"(batch {st.batch_id})"
    )
    console.print(_states_table(st))
    console.print(_usage_table(report.usage))
    console.print(_totals_line(report))
    if report.simulator is not None:
        console.print(_simulator_line(report.simulator))
    paths = [f"results: {report.results}  ({report.written} lines, input order)"]
    if report.log is not None:
        url = f"sqlite:///{Path(report.ledger).resolve()}"
        paths.append(f"ledger:  {report.ledger}  (LLMQ_DATABASE_URL={url} llmq status <batch>)")
        paths.append(f"log:     {report.log}")
    else:
        paths.append(f"ledger:  {report.ledger}")
    for line in paths:
        console.print(line, soft_wrap=True)  # paths are copied: never broken across lines


def _states_table(st: BatchStatus) -> Any:
    from rich.table import Table

    table = Table("jobs by state", "", box=None, title_justify="left")
    styles = {"succeeded": "green", "failed": "red", "quota_exceeded": "yellow"}
    for state, n in st.counts.items():
        if n:
            style = styles.get(state, "")
            table.add_row(f"[{style}]{state}[/]" if style else state, str(n))
    table.add_row("[bold]total", f"[bold]{st.total}")
    return table


def _usage_table(rows: list[UsageRow]) -> Any:
    from rich.table import Table

    from core.money import money_str

    table = Table(
        "provider", "model", "attempts", "ok", "failed", "tokens in/out", "cost USD",
        box=None, title="attempts by provider and model", title_justify="left",
    )  # fmt: skip
    for r in rows:
        table.add_row(
            r.group["provider"],
            r.group["model"],
            str(r.attempts),
            str(r.succeeded + r.cache_hits),
            f"[red]{r.failed}[/]" if r.failed else "0",
            f"{r.prompt_tokens:,}/{r.completion_tokens:,}",
            money_str(r.cost_usd),
        )
    return table


def _totals_line(report: Report) -> str:
    from core.money import money_str

    st = report.status
    attempts = sum(r.attempts for r in report.usage)
    extra = max(attempts - st.counts["succeeded"] - st.counts["failed"], 0)
    line = (
        f"{attempts} attempts for {st.total} jobs ({extra} retries and fallbacks); "
        f"tokens {st.prompt_tokens:,} prompt + {st.completion_tokens:,} completion; "
        f"cost ${money_str(st.cost_usd)}"
    )
    if st.cache_hits:
        line += f"; cache hits {st.cache_hits} (saved ${money_str(st.cache_saved_usd)})"
    if st.unpriced_attempts:
        line += f"; {st.unpriced_attempts} attempts unpriced"
    return line


def _simulator_line(stats: dict[str, Any]) -> str:
    by_status: dict[str, int] = {}
    for provider in stats.get("providers", {}).values():
        for code, n in provider.get("by_status", {}).items():
            by_status[str(code)] = by_status.get(str(code), 0) + int(n)
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(by_status.items()))
    return (
        f"simulator: {stats.get('total_requests', 0)} requests, "
        f"{stats.get('total_served', 0)} served ({codes})"
    )
