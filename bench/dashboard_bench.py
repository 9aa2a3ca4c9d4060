"""The dashboard on a large ledger: each page's time through `llmq serve`, first view and again.

1M attempts (200k in --quick) are written by Postgres itself (bench/dashboard_fill.py: ~30 s,
generate_series), then the BRIN index is summarized as autovacuum would have done on a ledger
that grew over weeks (`brin_summarize_new_values`; autosummarize does it range by range in
production). `llmq serve` runs as its own process; one httpx client per viewer signs in like a
browser (form POST, session cookie) and GETs each page: once cold (the process's first view),
then `WARM_GETS` more times (median). The process warms its dashboard memos in the background
when it starts (llmq/serve/dashboard/warmup.py): the time from /health answering to the
warm-up's log line and the process's own measure of the warm-up are reported as their own
figure ("start-up warm-up"), and the walks begin after it, as a viewer arriving a little after a restart
sees them. The admin walks first, on a process that has served nothing; the tenant's walk
follows (its spend memo is its own, but batches the admin's list already showed are warm).
Both figures are printed; the goal (< 300 ms) is judged on the first view, the stricter one.
Figures, never assertions.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from bench.dashboard_fill import FillShape, fill_statements
from bench.params import Params
from bench.report import Figure, Report, goal_at_most
from bench.serve_bench import _start_serve
from bench.stack import MODEL, Stack, wait_for_log

NAME = "dashboard"
WARM_GETS = 5
GOAL_MS = 300.0


def _fill(stack: Stack, shape: FillShape) -> float:
    from workers.providers import REGISTRY

    shape = FillShape(attempts=shape.attempts, providers=tuple(str(p) for p in REGISTRY)[:3],
                      models=(MODEL,))  # fmt: skip
    engine = create_engine(stack.database_url)
    t0 = time.monotonic()
    try:
        for statement in fill_statements(shape):
            with engine.begin() as conn:
                conn.execute(text(statement))
        with engine.begin() as conn:
            conn.execute(text("SELECT brin_summarize_new_values('ix_attempts_started_at_brin')"))
    finally:
        engine.dispose()
    return time.monotonic() - t0


def _keys(stack: Stack) -> dict[str, str]:
    from core.ledger import api_keys_repo

    engine = create_engine(stack.database_url)
    now = datetime.now(UTC)
    try:
        with Session(engine) as s, s.begin():
            _, admin = api_keys_repo.create_key(s, "ops", "bench", now, admin=True)
            _, tenant = api_keys_repo.create_key(s, "tenant-1", "bench", now)
    finally:
        engine.dispose()
    return {"admin": admin, "tenant-1": tenant}


def _time(client: httpx.Client, path: str) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    r = client.get(path)
    return (time.perf_counter() - t0) * 1000, r.status_code, r.text


def _pages(stack: Stack, tenant: str | None) -> list[str]:
    """The pages a viewer walks, ids read from the database (not through the pages, which
    would warm them): list, newest batch (active), the 20th newest (settled), one of its jobs,
    spend over 30 days (by provider, by model; an admin also filtered to a tenant), providers."""
    where = "WHERE tenant = :t" if tenant else ""
    rows = stack.sql(f"SELECT id FROM batches {where} ORDER BY created_at DESC LIMIT 20", t=tenant)
    newest, settled = rows[0][0], rows[-1][0]
    # a job with several attempts if the batch has one (a longer timeline), else any of its jobs
    sql = "SELECT id FROM jobs WHERE batch_id = :b ORDER BY attempts DESC LIMIT 1"
    job = stack.sql(sql, b=settled)[0][0]
    pages = ["/", f"/batches/{newest}", f"/batches/{settled}", f"/jobs/{job}"]
    pages += ["/spend?days=30", "/spend?days=30&by=model"]
    pages += [] if tenant else ["/spend?days=30&tenant=tenant-2"]
    return [*pages, "/providers"]


def run(stack: Stack, p: Params, report: Report) -> None:
    shape = FillShape(attempts=1_000_000 if p.mode == "full" else 200_000)
    fill_s = _fill(stack, shape)
    keys = _keys(stack)
    t0 = time.monotonic()
    base, _ = _start_serve(stack, 1, verbose=True)
    up_s = time.monotonic() - t0
    warmup_s, own_s = _wait_warmup(stack)
    report.add(
        Figure(NAME, "start-up warm-up (background thread, from app start)", own_s, "s",
               note=f"done {warmup_s:.2f} s after /health first answered ({up_s:.1f} s "
               "after spawn); pages are timed after it")
    )  # fmt: skip
    details: dict[str, dict[str, float]] = {}
    for viewer, key in keys.items():
        with httpx.Client(base_url=base, timeout=60) as client:
            client.post("/login", data={"key": key, "next": "/"})
            for path in _pages(stack, None if viewer == "admin" else viewer):
                cold, status, _ = _time(client, path)
                warm = statistics.median(_time(client, path)[0] for _ in range(WARM_GETS))
                details[f"{viewer} {path}"] = {"cold_ms": cold, "warm_ms": warm, "status": status}
                report.add(
                    Figure(
                        NAME,
                        f"{viewer}: GET {_short(path)}",
                        cold,
                        "ms",
                        f"< {GOAL_MS:.0f} ms",
                        goal_at_most(cold, GOAL_MS) if status == 200 else False,
                        note=f"again: {warm:.0f} ms (median of {WARM_GETS}); HTTP {status}",
                    )
                )
    report.details[NAME] = {
        "attempts": shape.attempts,
        "jobs": shape.jobs,
        "batches": shape.batches,
        "fill_s": fill_s,
        "warmup_s": warmup_s,
        "warmup_own_s": own_s,
        "load_average_1m": os.getloadavg()[0],
        "pages": details,
    }


def _wait_warmup(stack: Stack) -> tuple[float, float]:
    """(seconds from /health answering to the warm-up's log line, the seconds it logged)."""
    proc = stack.procs[-1]
    t0 = time.monotonic()
    wait_for_log(proc, "dashboard warm-up done in", 600)
    waited = time.monotonic() - t0
    found = re.search(r"dashboard warm-up done in ([0-9.]+) s", proc.logs())
    return waited, float(found.group(1)) if found else float("nan")


def _short(path: str) -> str:
    return re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", path)
