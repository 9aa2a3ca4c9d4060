"""The dashboard's figure reads, table-driven on a real Postgres ledger: spend per day equals
`usage_report` by day (what `llmq usage --by day` prints) for every tenant filter and
dimension, frozen days are read once and today is always live, and the batch list's states
and costs equal `batch_status`. Attempt rows are written here with the ORM (the workers'
shapes), since a worker cannot backdate attempts to earlier days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from helpers.jobs import seed
from sqlalchemy.orm import Session, sessionmaker

from core.ledger import batch_reads_repo
from core.ledger.models import Attempt
from core.ledger.usage_repo import usage_report
from llmq.serve.dashboard.batch_memo import FrozenMemo, batch_list
from llmq.serve.dashboard.spend import SpendMemo, spend_cells

NOW = datetime.now(UTC).replace(hour=12)
# (tenant, days ago, provider, model, outcome, cost, tokens, saved)
ROWS = [
    ("team-a", 10, "p1", "m1", "succeeded", "0.5", 100, None),
    ("team-a", 10, "p2", "m1", "failed", None, 0, None),
    ("team-a", 3, "p1", "m2", "succeeded", "0.25", 40, None),
    ("team-b", 3, "p2", "m2", "succeeded", "1.125", 70, None),
    ("team-b", 1, "p1", "m1", "cache_hit", "0", 0, "0.75"),
    ("team-a", 0, "p2", "m1", "succeeded", "0.00000001", 5, None),
]


def _attempt(job_id, n, days_ago, tenant, *row):  # type: ignore[no-untyped-def]
    provider, model, outcome, cost, tokens, saved = row
    return Attempt(
        job_id=job_id, attempt_no=n, tenant=tenant, provider=provider, model=model,
        deployment=f"{provider}/{model}", outcome=outcome, started_at=NOW - timedelta(days=days_ago),
        latency_ms=100 * n, waited_ms=0, prompt_tokens=tokens, completion_tokens=1 if tokens else 0,
        cost_usd=Decimal(cost) if cost is not None else None, reserved_usd=Decimal(0),
        reserved_tokens=0, saved_usd=Decimal(saved) if saved else None,
    )  # fmt: skip


@pytest.fixture()
def ledger(engine, clean_db):  # type: ignore[no-untyped-def]
    jobs = {t: seed(engine, len(ROWS), "m", tenant=t)[1] for t in ("team-a", "team-b")}
    with Session(engine) as s, s.begin():
        for i, (tenant, ago, *rest) in enumerate(ROWS):
            s.add(_attempt(jobs[tenant][i], 1, ago, tenant, *rest))
    return engine


def _expected(session: Session, tenant: str | None, dim: str, days: int):  # type: ignore[no-untyped-def]
    since = datetime.combine(NOW.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
    return {
        (r.group["day"], r.group[dim]): (r.attempts, r.total_tokens, r.cost_usd, r.saved_usd)
        for r in usage_report(session, since, tenant, ("day", dim))
    }


@pytest.mark.parametrize("tenant", [None, "team-a", "team-b"])
@pytest.mark.parametrize("dim", ["provider", "model"])
@pytest.mark.parametrize("days", [1, 2, 4, 30])
def test_spend_cells_equal_usage_by_day(ledger, tenant, dim, days) -> None:  # type: ignore[no-untyped-def]
    sessions = sessionmaker(ledger)
    memo = SpendMemo()
    for _ in range(2):  # cold, then from the memo
        day_list, cells = spend_cells(memo, sessions, tenant, dim, days, NOW)
        got = {(str(c.day), c.key): (c.attempts, c.tokens, c.cost_usd, c.saved_usd) for c in cells}
        with Session(ledger) as s:
            assert got == _expected(s, tenant, dim, days)
        assert len(day_list) == days and day_list[-1] == NOW.date()


def test_frozen_days_are_read_once_and_today_stays_live(ledger) -> None:  # type: ignore[no-untyped-def]
    sessions = sessionmaker(ledger)
    memo = SpendMemo()
    spend_cells(memo, sessions, None, "provider", 30, NOW)
    job = seed(ledger, 1, "m", tenant="team-a")[1][0]
    with Session(ledger) as s, s.begin():  # a late row on a frozen day, one today
        s.add(_attempt(job, 1, 10, "team-a", "p9", "m1", "succeeded", "2", 1, None))
        s.add(_attempt(job, 2, 0, "team-a", "p8", "m1", "succeeded", "3", 1, None))
    _, cells = spend_cells(memo, sessions, None, "provider", 30, NOW)
    keys = {c.key for c in cells}
    assert "p8" in keys and "p9" not in keys  # today live; the frozen day was read before
    _, fresh = spend_cells(SpendMemo(), sessions, None, "provider", 30, NOW)
    assert "p9" in {c.key for c in fresh}


def test_batch_list_equals_batch_status(ledger) -> None:  # type: ignore[no-untyped-def]
    memo = FrozenMemo()
    with Session(ledger) as s:
        for tenant in (None, "team-a", "team-b"):
            rows = batch_list(memo, s, tenant, NOW)
            assert rows and all(tenant in (None, r.tenant) for r in rows)
            for r in rows:
                st = batch_reads_repo.batch_status(s, r.id)
                assert (r.state, r.total, r.done, r.cost_usd) == (
                    st.state, st.total, st.done, st.cost_usd
                )  # fmt: skip
