"""The nightly run's report: ledger figures in, a JSON-ready dict and a Markdown page out.

Owns: the report's shape (`build_report`), the comparison with the previous night (`compare`)
and the Markdown rendering (`render_markdown`). The figures come in as the records the ledger
query returns (`core.ledger.nightly_figures_repo.RunFigures`). Must not: do any I/O, read the
clock or compute a figure the ledger did not give it: every number comes from SQL, so the
report agrees with `llmq usage` for the same jobs.

Money is `Decimal` in the figures and an exact string with 8 decimals in the report (as in
`llmq status --json` and `llmq usage --json`); durations are seconds.

Report shape (JSON; the same dict is stored in `nightly_runs.report`)::

    {"name", "run_date", "tenant", "budget_usd", "started_at", "finished_at", "duration_s",
     "complete": bool,                     # False: the wait timed out, some jobs still open
     "jobs": {"total", "by_state": {state: n}, "by_source": {inbox|deferred|parked|retry: n}},
     "inbox": {"ingested", "rejected", "files": [{"name", "state", "batch_id", "jobs"}]},
     "usage": {"attempts", "succeeded", "failed", "cache_hits", "prompt_tokens",
               "completion_tokens", "total_tokens", "cost_usd", "unpriced"},
     "by_provider_model": [{"provider", "model", ...the usage keys}],
     "failures": {"jobs_by_reason": {kind: n}, "attempts_by_reason": {kind: n}},
     "costliest_jobs": [{"job_id", "batch_id", "custom_id", "model", "provider", "state",
                         "prompt_tokens", "completion_tokens", "cost_usd"}],   # at most 10
     "usage_command": "llmq usage --tenant ... --since ...",   # the same figures, by hand
     "previous": {"run_date", "jobs_total", "succeeded", "failed", "total_tokens",
                  "cost_usd", "duration_s"} | None,
     "delta": {same keys but run_date: this night minus the previous} | None}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.ledger.nightly_figures_repo import JobCost, RunFigures, UsageFigures
from core.money import money_str

ZERO = Decimal(0)
COSTLIEST = 10  # jobs listed in the report
SOURCES = ("inbox", "deferred", "parked", "retry")
USAGE_KEYS = (
    "attempts",
    "succeeded",
    "failed",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
)
COMPARED = ("jobs_total", "succeeded", "failed", "total_tokens", "cost_usd", "duration_s")


# ---- building ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """The run itself: who paid, when it ran, whether every job settled."""

    name: str
    run_date: date
    tenant: str
    budget_usd: Decimal | None
    started_at: datetime
    finished_at: datetime
    complete: bool


def _usage_dict(rows: Sequence[UsageFigures]) -> dict[str, Any]:
    out: dict[str, Any] = {k: sum(getattr(r, k) for r in rows) for k in USAGE_KEYS}
    out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    out["cost_usd"] = money_str(sum((r.cost_usd for r in rows), ZERO))
    out["unpriced"] = sum(r.unpriced for r in rows)
    return out


def _job_dict(j: JobCost) -> dict[str, Any]:
    return {
        "job_id": j.job_id,
        "batch_id": j.batch_id,
        "custom_id": j.custom_id,
        "model": j.model,
        "provider": j.provider,
        "state": j.state,
        "prompt_tokens": j.prompt_tokens,
        "completion_tokens": j.completion_tokens,
        "cost_usd": money_str(j.cost_usd),
    }


def usage_command(tenant: str, started_at: datetime) -> str:
    """The `llmq usage` call that shows the same tokens and cost (when only the run used the
    nightly tenant since it started)."""
    return f"llmq usage --tenant {tenant} --since {started_at.isoformat()} --by provider,model"


def build_report(
    info: RunInfo,
    figures: RunFigures,
    states: Sequence[str],
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict (see the module docstring). `states` lists every job state, so the
    counts show zeros too; `previous` is the previous night's stored report, if any."""
    by_state = {s: int(figures.by_state.get(s, 0)) for s in states}
    inbox = [
        {"name": f.name, "state": f.state, "batch_id": f.batch_id, "jobs": f.jobs}
        for f in figures.inbox
    ]
    report: dict[str, Any] = {
        "name": info.name,
        "run_date": info.run_date.isoformat(),
        "tenant": info.tenant,
        "budget_usd": money_str(info.budget_usd),
        "started_at": info.started_at.isoformat(),
        "finished_at": info.finished_at.isoformat(),
        "duration_s": round((info.finished_at - info.started_at).total_seconds(), 3),
        "complete": info.complete,
        "jobs": {
            "total": sum(by_state.values()),
            "by_state": by_state,
            "by_source": {s: int(figures.by_source.get(s, 0)) for s in SOURCES},
        },
        "inbox": {
            "ingested": sum(1 for f in figures.inbox if f.state == "ingested"),
            "rejected": sum(1 for f in figures.inbox if f.state == "rejected"),
            "files": inbox,
        },
        "usage": _usage_dict(figures.usage),
        "by_provider_model": [
            {"provider": r.provider, "model": r.model, **_usage_dict([r])} for r in figures.usage
        ],
        "failures": {
            "jobs_by_reason": dict(sorted(figures.failed_jobs_by_reason.items())),
            "attempts_by_reason": dict(sorted(figures.failed_attempts_by_reason.items())),
        },
        "costliest_jobs": [_job_dict(j) for j in figures.costliest[:COSTLIEST]],
        "lanes": dict(figures.lanes),  # issue 18: per lane, and saved by batch lanes
        "usage_command": usage_command(info.tenant, info.started_at),
    }
    report["previous"] = summary(previous) if previous else None
    report["delta"] = compare(summary(report), report["previous"]) if previous else None
    return report


def summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The figures two nights are compared on, taken from a stored report."""
    by_state = report["jobs"]["by_state"]
    return {
        "run_date": report["run_date"],
        "jobs_total": report["jobs"]["total"],
        "succeeded": by_state.get("succeeded", 0),
        "failed": by_state.get("failed", 0),
        "total_tokens": report["usage"]["total_tokens"],
        "cost_usd": report["usage"]["cost_usd"],
        "duration_s": report["duration_s"],
    }


def compare(current: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
    """This night minus the previous one, key by key (money stays an exact string)."""
    delta: dict[str, Any] = {}
    for key in COMPARED:
        if key == "cost_usd":
            delta[key] = money_str(Decimal(current[key]) - Decimal(previous[key]))
        elif key == "duration_s":
            delta[key] = round(float(current[key]) - float(previous[key]), 3)
        else:
            delta[key] = int(current[key]) - int(previous[key])
    return delta


# ---- Markdown ----------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _signed(value: Any) -> str:
    text = str(value)
    return text if text.startswith("-") else f"+{text}"


def render_markdown(report: Mapping[str, Any]) -> str:
    """A readable page with the same figures as the JSON."""
    usage, jobs = report["usage"], report["jobs"]
    out = [
        f"# Nightly run {report['run_date']} ({report['name']})",
        "",
        f"- Tenant: `{report['tenant']}`, budget: {report['budget_usd'] or 'none'} USD",
        f"- Started {report['started_at']}, finished {report['finished_at']} "
        f"({report['duration_s']} s)" + ("" if report["complete"] else " - wait timed out"),
        f"- Jobs: {jobs['total']}; attempts: {usage['attempts']}; tokens: "
        f"{usage['total_tokens']}; cost: {usage['cost_usd']} USD",
        f"- Same figures: `{report['usage_command']}`",
        _saved_line(report),
        "",
        "## Jobs by state",
        "",
        *_table(["state", "jobs"], [(s, n) for s, n in jobs["by_state"].items() if n]),
        "## Where the jobs came from",
        "",
        *_table(["source", "jobs"], list(jobs["by_source"].items())),
        "## Inbox files",
        "",
        *_table(
            ["file", "state", "jobs", "batch"],
            [(f["name"], f["state"], f["jobs"], f["batch_id"]) for f in report["inbox"]["files"]],
        ),
        "## Tokens and cost by provider and model",
        "",
        *_table(
            ["provider", "model", "attempts", "ok", "failed", "prompt", "completion", "cost USD"],
            [
                (r["provider"], r["model"], r["attempts"], r["succeeded"], r["failed"])
                + (r["prompt_tokens"], r["completion_tokens"], r["cost_usd"])
                for r in report["by_provider_model"]
            ],
        ),
        "## Failures by reason",
        "",
        *_table(
            ["reason", "failed jobs", "failed attempts"],
            [
                (k, report["failures"]["jobs_by_reason"].get(k, 0), n_attempts)
                for k, n_attempts in _reasons(report["failures"])
            ],
        ),
        "## Costliest jobs",
        "",
        *_table(
            ["job", "custom_id", "model", "provider", "state", "tokens", "cost USD"],
            [
                (j["job_id"], j["custom_id"], j["model"], j["provider"], j["state"])
                + (j["prompt_tokens"] + j["completion_tokens"], j["cost_usd"])
                for j in report["costliest_jobs"]
            ],
        ),
        "## Compared with the previous night",
        "",
    ]
    return "\n".join(out + _comparison(report)) + "\n"


def _saved_line(report: Mapping[str, Any]) -> str:
    """The "saved by batch lanes" line (issue 18)."""
    lanes = report.get("lanes") or {}
    batch = lanes.get("batch") or {"attempts": 0, "cost_usd": "0"}
    return (
        f"- Saved by batch lanes: {lanes.get('saved_usd', '0')} USD "
        f"({batch['attempts']} batch-lane attempts costing {batch['cost_usd']} USD)"
    )


def _reasons(failures: Mapping[str, Mapping[str, int]]) -> list[tuple[str, int]]:
    kinds = sorted(set(failures["jobs_by_reason"]) | set(failures["attempts_by_reason"]))
    return [(k, failures["attempts_by_reason"].get(k, 0)) for k in kinds]


def _comparison(report: Mapping[str, Any]) -> list[str]:
    previous, delta = report.get("previous"), report.get("delta")
    if not previous or not delta:
        return ["No previous night to compare with.", ""]
    current = summary(report)
    rows = [(k, previous[k], current[k], _signed(delta[k])) for k in COMPARED]
    return _table(["figure", previous["run_date"], report["run_date"], "change"], rows)
