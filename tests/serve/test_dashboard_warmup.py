"""The dashboard's start-up warm-up on a real Postgres ledger: it fills the spend memo with
exactly the frozen days' cells a first view would read (every tenant filter and dimension),
and the batch memo with the cost of each finished batch; after it, those figures are served
from the memo (a late row on a frozen day stays unseen, as after a first view). A failing
step is logged, not raised."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import create_engine, update
from sqlalchemy.orm import Session, sessionmaker

from core.ledger import batch_reads_repo
from core.ledger.models import Job
from llmq.serve.dashboard import DashboardState
from llmq.serve.dashboard.spend import SpendMemo, spend_cells
from llmq.serve.dashboard.warmup import warm
from tests.helpers.jobs import seed
from tests.serve.test_dashboard_figures import NOW, _attempt, ledger  # noqa: F401 - fixture

REDIS = os.environ.get("LLMQ_TEST_REDIS", "redis://127.0.0.1:6379")


def _cells(memo, sessions, tenant, dim):  # type: ignore[no-untyped-def]
    _, cells = spend_cells(memo, sessions, tenant, dim, 30, NOW)
    return sorted((c.day, c.key, c.attempts, c.tokens, c.cost_usd, c.cache_hits, c.saved_usd)
                  for c in cells)  # fmt: skip


def test_warmup_fills_the_memos_with_the_ledgers_figures(ledger) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions = sessionmaker(ledger)
    finished, jobs = seed(ledger, 3, "m", tenant="team-a")
    with Session(ledger) as s, s.begin():  # a batch finished two hours ago: frozen
        s.execute(update(Job).where(Job.batch_id == finished)
                  .values(state="succeeded", finished_at=NOW - timedelta(hours=2)))  # fmt: skip
        s.add(_attempt(jobs[0], 1, 5, "team-a", "p1", "m1", "succeeded", "0.375", 9, None))
    scopes = [(t, d) for t in (None, "team-a", "team-b") for d in ("provider", "model")]
    expected = {k: _cells(SpendMemo(), sessions, *k) for k in scopes}  # as a cold first view
    dash = DashboardState("", REDIS)
    assert dash.batches.get(("cost", finished)) is None
    took = warm(dash, SimpleNamespace(sessions=sessions), now=NOW)
    assert took == dash.warmup_s and took >= 0
    with Session(ledger) as s:
        cost = batch_reads_repo.batch_status(s, finished).cost_usd
    assert dash.batches.get(("cost", finished)) == cost == Decimal("0.375")
    late = seed(ledger, 1, "m", tenant="team-b")[1][0]
    with Session(ledger) as s, s.begin():  # a late row on a frozen day: the memo keeps it out
        s.add(_attempt(late, 1, 10, "team-b", "p9", "m9", "succeeded", "2", 1, None))
    for key in scopes:
        assert _cells(dash.memo, sessions, *key) == expected[key], key
    assert _cells(SpendMemo(), sessions, None, "provider") != expected[(None, "provider")]


def test_a_failing_warmup_is_logged_not_raised(caplog) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine("postgresql+psycopg://127.0.0.1:1/none", pool_pre_ping=False)
    dash = DashboardState("", REDIS)
    with caplog.at_level(logging.INFO, logger="llmq.serve.dashboard.warmup"):
        warm(dash, SimpleNamespace(sessions=sessionmaker(engine)))
    engine.dispose()
    failed = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert failed == ["dashboard warm-up: spend failed", "dashboard warm-up: batch lists failed"]
    assert dash.warmup_s is not None and dash.health() is not None
