"""What a chaos scenario proves, read from the ledger (never from Celery) and the simulator.

`batch_figures` counts, for one batch: jobs lost (no terminal state or no result line),
jobs duplicated (a repeated result line, more than one succeeded attempt, or job usage that
differs from its succeeded attempt), attempts by outcome, tokens on jobs versus attempts, and
reservations still held. `Figures` keeps every scenario's numbers and writes them as JSON.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from producer.client import Client

_JOB_USAGE_MISMATCH = """
SELECT count(*) FROM jobs j
LEFT JOIN (
    SELECT job_id, count(*) AS n, sum(prompt_tokens) AS p, sum(completion_tokens) AS c
    FROM attempts WHERE outcome = 'succeeded' GROUP BY job_id
) a ON a.job_id = j.id
WHERE j.batch_id = :b AND j.state = 'succeeded'
  AND (a.n IS DISTINCT FROM 1 OR a.p <> j.prompt_tokens OR a.c <> j.completion_tokens)
"""
_ATTEMPTS = """
SELECT a.outcome, count(*), coalesce(sum(a.prompt_tokens + a.completion_tokens), 0)
FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.batch_id = :b GROUP BY a.outcome
"""
_JOB_TOKENS = """
SELECT coalesce(sum(prompt_tokens + completion_tokens), 0), max(attempts),
       count(*) FILTER (WHERE state = 'succeeded' AND result IS NULL),
       count(*) FILTER (WHERE state = 'failed' AND (error IS NULL OR error->>'type' IS NULL))
FROM jobs WHERE batch_id = :b
"""
_MAX_ROWS_PER_JOB = """
SELECT coalesce(max(n), 0) FROM (
    SELECT count(*) AS n FROM attempts a JOIN jobs j ON j.id = a.job_id
    WHERE j.batch_id = :b GROUP BY a.job_id) t
"""
_RESERVED = "SELECT coalesce(sum(reserved_tokens), 0) FROM budget_windows"
# what the tenants' day windows hold as spent (lost calls' worst case included, issue 19)
_QUOTA_SPENT = (
    "SELECT coalesce(sum(spent_tokens), 0), coalesce(sum(spent_usd), 0) FROM budget_windows "
    "WHERE period = 'day' AND scope LIKE 'tenant:%'"
)
_SPENT_UNKNOWN = """
SELECT count(*), coalesce(sum(a.reserved_tokens), 0), coalesce(sum(a.reserved_usd), 0)
FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.batch_id = :b AND a.outcome = 'lost'
"""
_STARTED = "SELECT count(*) FROM attempts WHERE outcome = 'started'"


def wait_reservations_closed(engine: Engine, timeout_s: float = 40.0) -> None:
    """Dead workers' attempts are closed by the sweeper a lease after they started; wait
    (bounded) until none is left open, so the reservation check below is exact."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if not conn.execute(text(_STARTED)).scalar():
                return
        time.sleep(0.2)


def batch_figures(
    engine: Engine, client: Client, batch_id: uuid.UUID, lines: int
) -> dict[str, Any]:
    """The scenario's numbers for one batch of `lines` input lines (see the module docstring)."""
    results = list(client.iter_results(batch_id))
    per_line = Counter(r["custom_id"] for r in results)
    statuses = Counter(r["status"] for r in results)
    terminal = {"succeeded", "failed", "cancelled"}
    answered = {r["custom_id"] for r in results if r["status"] in terminal}
    with engine.connect() as conn:
        mismatched = int(conn.execute(text(_JOB_USAGE_MISMATCH), {"b": batch_id}).scalar() or 0)
        attempts = {
            o: (int(n), int(t)) for o, n, t in conn.execute(text(_ATTEMPTS), {"b": batch_id})
        }
        job_tokens, max_claims, no_result, no_reason = conn.execute(
            text(_JOB_TOKENS), {"b": batch_id}
        ).one()
        max_rows = int(conn.execute(text(_MAX_ROWS_PER_JOB), {"b": batch_id}).scalar() or 0)
        reserved = int(conn.execute(text(_RESERVED)).scalar() or 0)
        quota_tokens, quota_usd = conn.execute(text(_QUOTA_SPENT)).one()
        unknown = conn.execute(text(_SPENT_UNKNOWN), {"b": batch_id}).one()
    repeated = sum(n - 1 for n in per_line.values() if n > 1)
    return {
        "jobs": lines,
        "succeeded": statuses.get("succeeded", 0),
        "failed": statuses.get("failed", 0),
        "lost": lines - len(answered),
        "duplicated": repeated + mismatched,
        "attempts": {o: n for o, (n, _) in sorted(attempts.items())},
        "attempt_rows": sum(n for n, _ in attempts.values()),
        "job_tokens": int(job_tokens or 0),
        "succeeded_attempt_tokens": attempts.get("succeeded", (0, 0))[1],
        "all_attempt_tokens": sum(t for _, t in attempts.values()),
        "max_claims_per_job": int(max_claims or 0),
        "max_attempt_rows_per_job": max_rows,
        "succeeded_without_result": int(no_result or 0),
        "failed_without_reason": int(no_reason or 0),
        "reserved_tokens_left": reserved,
        "quota_spent_tokens": int(quota_tokens),
        "quota_spent_usd": str(quota_usd),
        "spent_unknown": {
            "attempts": int(unknown[0]),
            "tokens": int(unknown[1]),
            "usd": str(unknown[2]),
        },
    }


def failure_reasons(client: Client, batch_id: uuid.UUID) -> dict[str, int]:
    return dict(
        Counter(
            (r["error"] or {}).get("type", "?")
            for r in client.iter_results(batch_id)
            if r["status"] == "failed"
        )
    )


class Figures:
    """Every scenario's figures, rewritten to one JSON file after each scenario."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.scenarios: dict[str, dict[str, Any]] = {}
        self.lines: list[str] = []

    def record(self, name: str, figures: dict[str, Any]) -> str:
        self.scenarios[name] = figures
        self.path.write_text(json.dumps(self.scenarios, indent=2, default=str))
        keys = ("jobs", "kills", "lost", "duplicated")
        head = " ".join(f"{k}={figures[k]}" for k in keys if k in figures)
        rest = " ".join(
            f"{k}={v if isinstance(v, int | float | str) else json.dumps(v, separators=(',', ':'))}"
            for k, v in figures.items()
            if k not in keys
        )
        line = f"CHAOS {name}: {head} | {rest}"
        self.lines.append(line)
        print(f"\n{line}\nchaos figures: {self.path}")
        return line
