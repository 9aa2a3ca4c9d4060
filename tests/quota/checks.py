"""Reusable budget checks and seeding for quota tests (the pipeline-level test imports these).

`assert_budget_holds` is the zero-overshoot verdict: for a tenant's windows (and a batch's),
nothing is left reserved, spend is at or under every limit, and the windows' spend equals what
the attempts ledger says was spent. `seed_batch` writes a batch and its jobs directly (test data
only; production writes go through workers/ledger). `race` runs callables on N threads released
together by a barrier.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.ledger.budget_window_rows import BATCH_WINDOW_START, batch_scope, tenant_scope
from core.ledger.models import Attempt, Batch, BudgetWindow, Job
from core.quota import window_end, windows

__all__ = ["Totals", "assert_budget_holds", "attempt_totals", "race", "seed_batch"]


@dataclass(frozen=True)
class Totals:
    usd: Decimal
    tokens: int


def seed_batch(
    session: Session,
    tenant: str,
    n_jobs: int,
    max_cost_usd: Decimal | None = None,
    now: datetime | None = None,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A batch with `n_jobs` queued jobs for `tenant`; returns (batch id, job ids)."""
    now = now or datetime.now(UTC)
    batch = Batch(
        tenant=tenant, total_jobs=n_jobs, max_cost_usd=max_cost_usd, created_at=now, state="active"
    )
    session.add(batch)
    session.flush()
    jobs = [
        Job(
            batch_id=batch.id,
            line_no=i + 1,
            custom_id=f"job-{i}",
            tenant=tenant,
            model="m",
            spec={"messages": [{"role": "user", "content": f"hello {i}"}]},
            state="queued",
            created_at=now,
        )
        for i in range(n_jobs)
    ]
    session.add_all(jobs)
    session.flush()
    return batch.id, [j.id for j in jobs]


def attempt_totals(
    session: Session, tenant: str, start: datetime, end: datetime, batch_id: uuid.UUID | None = None
) -> Totals:
    """What the attempts ledger says a window spent: tokens used, and cost booked the way
    settle books it: the known cost, else the reserved USD for a call that used tokens at an
    unknown price, else nothing (a failed or lost call whose reservation was released)."""
    used = Attempt.prompt_tokens + Attempt.completion_tokens
    booked = case(
        (Attempt.cost_usd.is_not(None), Attempt.cost_usd),
        (used > 0, Attempt.reserved_usd),
        else_=0,
    )
    stmt = (
        select(
            func.coalesce(func.sum(booked), 0),
            func.coalesce(func.sum(used), 0),
        )
        .join(Job, Job.id == Attempt.job_id)
        .where(Job.tenant == tenant, Attempt.started_at >= start, Attempt.started_at < end)
    )
    if batch_id is not None:
        stmt = stmt.where(Job.batch_id == batch_id)
    usd, tokens = session.execute(stmt).one()
    return Totals(Decimal(usd), int(tokens))


def _window(session: Session, scope: str, period: str, start) -> BudgetWindow | None:  # type: ignore[no-untyped-def]
    stmt = select(BudgetWindow).where(
        BudgetWindow.scope == scope,
        BudgetWindow.period == period,
        BudgetWindow.window_start == start,
    )
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def _check_window(w: BudgetWindow, expected: Totals | None) -> None:
    label = f"{w.scope} {w.period} {w.window_start}"
    assert w.reserved_usd == 0, f"{label}: {w.reserved_usd} USD still reserved"
    assert w.reserved_tokens == 0, f"{label}: {w.reserved_tokens} tokens still reserved"
    if w.limit_usd is not None:
        assert w.spent_usd <= w.limit_usd, f"{label}: spent {w.spent_usd} > limit {w.limit_usd}"
    if w.limit_tokens is not None:
        assert w.spent_tokens <= w.limit_tokens, f"{label}: {w.spent_tokens} > {w.limit_tokens}"
    if expected is not None:
        assert (w.spent_usd, w.spent_tokens) == (expected.usd, expected.tokens), (
            f"{label}: window says {w.spent_usd} USD / {w.spent_tokens} tokens, "
            f"attempts say {expected.usd} / {expected.tokens}"
        )


def assert_budget_holds(
    session: Session,
    tenant: str,
    at: datetime,
    batch_id: uuid.UUID | None = None,
    match_attempts: bool = True,
) -> dict[str, BudgetWindow]:
    """Zero overshoot and no leak for the windows containing `at`; returns them by period.

    With `match_attempts`, each window's spend must equal the attempts ledger's (exactly).
    """
    found: dict[str, BudgetWindow] = {}
    for period, start in windows(at).items():
        w = _window(session, tenant_scope(tenant), period, start)
        if w is None:
            continue
        begin = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
        expected = attempt_totals(session, tenant, begin, window_end(period, start))
        _check_window(w, expected if match_attempts else None)
        found[period] = w
    if batch_id is not None:
        w = _window(session, batch_scope(batch_id), "batch", BATCH_WINDOW_START)
        if w is not None:
            far = datetime(9999, 1, 1, tzinfo=UTC)
            epoch = datetime(1970, 1, 1, tzinfo=UTC)
            expected = attempt_totals(session, tenant, epoch, far, batch_id)
            _check_window(w, expected if match_attempts else None)
            found["batch"] = w
    return found


def race(n_threads: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run work(i) on n threads released together; returns the exceptions they raised."""
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
