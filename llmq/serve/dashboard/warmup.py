"""The dashboard's warm-up: when a serve process starts, one background thread fills the memos
a first view would otherwise fill, so a viewer's first page costs what a repeated one does.

Owns: `start` (the thread, begun by the app's lifespan; never awaited, so startup and /health
do not wait for it) and `warm` (its work, bounded): the health store client (importing it
costs ~0.2 s, the Providers page's first-view cost), the frozen days of the default 30-day
spend view for every tenant filter likely to be asked (all tenants, and the `WARM_TENANTS`
tenants with most attempts, by provider and by model) from ONE range scan grouped by (day,
tenant, provider, model) and summed up exactly (counts and NUMERIC sums), and the cost of the
finished batches on the batch lists of all tenants and the `WARM_TENANTS` most recent ones.
Each step's error is logged, never raised; a stop request is honoured between steps.
Must not: write anything, keep anything the memos would not keep themselves (only frozen days
and frozen batches, by the memos' own rules), or replace a memo entry a request already made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from core.ledger import dashboard_reads_repo
from core.ledger.db import session_scope
from core.ledger.spend_reads_repo import SPEND_DIMENSIONS, SpendCell, SpendPart, spend_parts
from llmq.serve.dashboard.batch_memo import batch_list
from llmq.serve.dashboard.spend import frozen_range
from llmq.serve.state import ServeState

log = logging.getLogger(__name__)

WARM_DAYS = 30  # the Spend page's default view
WARM_TENANTS = 32  # per-tenant spend keys and batch lists warmed (the memo keeps 256 keys)

Key = tuple[str | None, str]  # (tenant filter, dimension), as `SpendMemo` keys its spans


def rollup(parts: Iterable[SpendPart], tenants: set[str]) -> dict[Key, list[SpendCell]]:
    """The cells `spend_by_day` would return for every tenant filter in `tenants` and None
    (all tenants), by each dimension: sums of the parts, ordered by (day, key) like it."""
    sums: dict[Key, dict[tuple[Any, str], list[Any]]] = {}
    for p in parts:
        for scope in (None, p.tenant) if p.tenant in tenants else (None,):
            for dim in SPEND_DIMENSIONS:
                cells = sums.setdefault((scope, dim), {})
                key = p.provider if dim == "provider" else p.model
                acc = cells.setdefault((p.day, key), [0, 0, Decimal(0), 0, Decimal(0)])
                acc[0] += p.attempts
                acc[1] += p.tokens
                acc[2] += p.cost_usd
                acc[3] += p.cache_hits
                acc[4] += p.saved_usd
    return {
        k: [SpendCell(d, key, *acc) for (d, key), acc in sorted(cells.items())]
        for k, cells in sums.items()
    }


def _top_tenants(parts: list[SpendPart]) -> set[str]:
    counts: dict[str, int] = {}
    for p in parts:
        counts[p.tenant] = counts.get(p.tenant, 0) + p.attempts
    return set(sorted(counts, key=lambda t: (-counts[t], t))[:WARM_TENANTS])


def warm_spend(dash: Any, state: ServeState, now: datetime) -> int:
    """Seed the spend memo with the frozen days of the `WARM_DAYS`-day view; keys seeded."""
    lo, hi = frozen_range(WARM_DAYS, now)
    if lo >= hi:
        return 0
    with session_scope(state.sessions) as session:
        parts = spend_parts(
            session, datetime.combine(lo, dtime.min, UTC), datetime.combine(hi, dtime.min, UTC)
        )
    tenants = _top_tenants(parts)
    cells = rollup(parts, tenants)
    keys = [(scope, dim) for scope in (None, *sorted(tenants)) for dim in SPEND_DIMENSIONS]
    # a key with no attempts in the range is seeded empty: its first view reads only live days
    return sum(
        dash.memo.seed(scope, dim, lo, hi, cells.get((scope, dim), [])) for scope, dim in keys
    )


def warm_batches(dash: Any, state: ServeState, now: datetime) -> int:
    """Read the batch lists of all tenants and of the most recent ones once, which keeps the
    cost of every frozen batch on them; lists read."""
    with session_scope(state.sessions) as session:
        scopes = [None, *dashboard_reads_repo.recent_tenants(session, limit=WARM_TENANTS)]
    for scope in scopes:
        with session_scope(state.sessions) as session:
            batch_list(dash.batches, session, scope, now)
    return len(scopes)


def warm(
    dash: Any, state: ServeState, stop: threading.Event | None = None, now: datetime | None = None
) -> float:
    """Every step once, each error logged; the seconds it took (also kept on `dash`)."""
    t0 = time.monotonic()
    now = now or datetime.now(UTC)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("health store", dash.health),
        ("spend", lambda: warm_spend(dash, state, now)),
        ("batch lists", lambda: warm_batches(dash, state, now)),
    ]
    for name, step in steps:
        if stop is not None and stop.is_set():
            break
        try:
            step()
        except Exception:  # noqa: BLE001 - a failed warm-up only leaves a first view slower
            log.exception("dashboard warm-up: %s failed", name)
    dash.warmup_s = time.monotonic() - t0
    log.info("dashboard warm-up done in %.3f s", dash.warmup_s)
    return dash.warmup_s


def start(dash: Any, state: ServeState) -> Callable[[], None]:
    """Begin the warm-up in a daemon thread; returns the function that stops it (waits
    briefly: a query under way is not cut off, the process may exit past it)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=warm, args=(dash, state, stop), name="dashboard-warmup", daemon=True
    )
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=2)

    return halt
