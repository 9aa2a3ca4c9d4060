"""`llmq quota set|show` and `llmq usage` end to end: the installed command in a subprocess,
against the test database, checked against direct SQL sums to the cent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from core.ledger.db import make_engine, make_sessionmaker, session_scope
from core.ledger.models import Attempt
from core.ledger.quota_repo import release, reserve, settle

from .checks import assert_budget_holds, seed_batch

LLMQ = str(Path(sys.executable).with_name("llmq"))
D = Decimal


def llmq(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLMQ_DATABASE_URL": db_url}
    return subprocess.run([LLMQ, *args], env=env, capture_output=True, text=True, timeout=120)


def llmq_json(db_url: str, *args: str) -> Any:
    done = llmq(db_url, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# (provider, model, outcome, prompt, completion, cost, saved): one attempt each
CALLS = [
    ("openai", "gpt-4o-mini", "succeeded", 120, 30, D("0.00012345"), None),
    ("openai", "gpt-4o-mini", "succeeded", 200, 50, D("0.00020001"), None),
    ("anthropic", "claude-haiku", "succeeded", 90, 10, D("0.0101"), None),
    ("anthropic", "claude-haiku", "cache_hit", 0, 0, D(0), D("0.0101")),
    ("local", "llama", "succeeded", 50, 5, None, None),  # unknown price: booked at reserved
    ("openai", "gpt-4o-mini", "failed", 0, 0, None, None),  # released
]
RESERVED = (500, D("0.02"))


def _seed(session: Session, tenant: str, now: datetime) -> None:
    """What the pipeline writes: reservation, attempt row, settlement or release."""
    batch_id, jobs = seed_batch(session, tenant, len(CALLS), now=now)
    for job_id, (prov, model, outcome, pt, ct, cost, saved) in zip(jobs, CALLS, strict=True):
        assert reserve(session, tenant, batch_id, None, *RESERVED, now)
        session.add(
            Attempt(
                job_id=job_id, attempt_no=1, provider=prov, model=model,
                deployment=f"{prov}/{model}", outcome=outcome, started_at=now, tenant=tenant,
                prompt_tokens=pt, completion_tokens=ct, cost_usd=cost, saved_usd=saved,
                reserved_tokens=RESERVED[0], reserved_usd=RESERVED[1],
            )
        )  # fmt: skip
        if outcome == "failed":
            release(session, tenant, batch_id, now, *RESERVED)
        else:
            settle(session, tenant, batch_id, now, *RESERVED, pt + ct, cost)


def test_quota_set_show_and_usage_agree_with_the_ledger(clean_db: str) -> None:
    done = llmq(clean_db, "quota", "set", "--tenant", "acme", "--usd-per-day", "5")
    assert done.returncode == 0, done.stderr
    done = llmq(clean_db, "quota", "set", "--tenant", "acme", "--tokens-per-month", "100000")
    assert done.returncode == 0, done.stderr
    assert "acme per day: USD $5.0000, tokens unlimited" in done.stdout

    now = datetime.now(UTC)
    engine = make_engine(clean_db, pool_size=2)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        _seed(s, "acme", now)
        _seed(s, "globex", now)
        assert reserve(s, "acme", uuid.uuid4(), None, 77, D("0.5"), now)  # one call in flight
    engine.dispose()

    shown = llmq_json(clean_db, "quota", "show", "--tenant", "acme")["windows"]
    assert [(w["tenant"], w["period"]) for w in shown] == [("acme", "day"), ("acme", "month")]
    day, month = shown
    assert (day["limit_usd"], day["limit_tokens"]) == ("5.00000000", None)
    assert (month["limit_usd"], month["limit_tokens"]) == (None, 100000)

    sql = create_engine(clean_db)
    with sql.connect() as conn:
        cost, tokens = conn.execute(
            text(
                "SELECT sum(coalesce(a.cost_usd, CASE WHEN a.outcome = 'succeeded' "
                "THEN a.reserved_usd ELSE 0 END)), sum(a.prompt_tokens + a.completion_tokens) "
                "FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.tenant = 'acme'"
            )
        ).one()
        priced = conn.execute(
            text(
                "SELECT sum(a.cost_usd), sum(a.saved_usd) FROM attempts a "
                "JOIN jobs j ON j.id = a.job_id WHERE j.tenant = 'acme'"
            )
        ).one()
        windows_sum = conn.execute(
            text(
                "SELECT spent_usd, reserved_usd FROM budget_windows "
                "WHERE scope = 'tenant:acme' AND period = 'day'"
            )
        ).one()
    sql.dispose()

    for w in (day, month):
        assert D(w["used_usd"]) == cost == windows_sum.spent_usd  # to the cent, and beyond
        assert w["used_tokens"] == tokens
        assert (D(w["reserved_usd"]), w["reserved_tokens"]) == (D("0.5"), 77)
    assert D(day["remaining_usd"]) == D(5) - cost - D("0.5")
    assert month["remaining_tokens"] == 100000 - tokens - 77

    usage = llmq_json(clean_db, "usage", "--tenant", "acme", "--by", "provider,model,day")
    today = now.strftime("%Y-%m-%d")
    rows = {(r["provider"], r["model"], r["day"]): r for r in usage["rows"]}
    assert set(rows) == {
        ("anthropic", "claude-haiku", today),
        ("local", "llama", today),
        ("openai", "gpt-4o-mini", today),
    }
    openai = rows[("openai", "gpt-4o-mini", today)]
    assert (openai["attempts"], openai["succeeded"], openai["failed"]) == (3, 2, 1)
    assert (openai["total_tokens"], openai["cost_usd"]) == (400, "0.00032346")
    anthropic = rows[("anthropic", "claude-haiku", today)]
    assert (anthropic["cache_hits"], anthropic["saved_usd"]) == (1, "0.01010000")
    assert rows[("local", "llama", today)]["unpriced"] == 1
    total = usage["total"]
    assert D(total["cost_usd"]) == priced[0]  # known costs, exactly
    assert D(total["saved_usd"]) == priced[1]
    assert total["total_tokens"] == tokens
    # quota books the unpriced call at its reservation; usage shows it as unpriced
    assert D(total["cost_usd"]) + RESERVED[1] * total["unpriced"] == D(day["used_usd"])

    everyone = llmq_json(clean_db, "usage", "--by", "tenant")
    assert [r["tenant"] for r in everyone["rows"]] == ["acme", "globex"]
    assert llmq_json(clean_db, "usage", "--since", "2099-01-01")["rows"] == []


def test_quota_set_keeps_what_it_is_not_given_and_clears_with_none(clean_db: str) -> None:
    args = ["quota", "set", "--tenant", "t1", "--usd-per-day", "2.5", "--tokens-per-day", "900"]
    assert llmq(clean_db, *args).returncode == 0
    assert llmq(clean_db, "quota", "set", "--tenant", "t1", "--usd-per-day", "none").returncode == 0
    (day, month) = llmq_json(clean_db, "quota", "show")["windows"]
    assert (day["tenant"], day["limit_usd"], day["limit_tokens"]) == ("t1", None, 900)
    assert (month["limit_usd"], month["limit_tokens"]) == (None, None)
    assert (
        day["resets_at"]
        == (datetime.fromisoformat(day["window_start"]) + timedelta(days=1))
        .replace(tzinfo=UTC)
        .isoformat()
    )


def test_bad_input_is_refused_with_a_reason(clean_db: str) -> None:
    cases = [
        (["quota", "set", "--tenant", "t", "--usd-per-day", "five"], "not a number"),
        (["quota", "set", "--tenant", "t", "--tokens-per-month", "-3"], ">= 0"),
        (["quota", "set", "--tenant", "t"], "at least one limit"),
        (["quota", "set", "--tenant", "x" * 101, "--usd-per-day", "1"], "1 to 100"),
        (["usage", "--by", "colour"], "choose from"),
        (["usage", "--since", "yesterday-ish"], "7d"),
    ]
    for args, reason in cases:
        done = llmq(clean_db, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert reason in done.stderr, (args, done.stderr)


def test_human_tables_print(clean_db: str) -> None:
    assert llmq(clean_db, "quota", "set", "--tenant", "acme", "--usd-per-day", "5").returncode == 0
    shown = llmq(clean_db, "quota", "show")
    assert shown.returncode == 0 and "acme" in shown.stdout, shown.stderr
    usage = llmq(clean_db, "usage", "--by", "day")
    assert usage.returncode == 0, usage.stderr


def test_an_unreachable_ledger_is_reported_without_the_password() -> None:
    done = llmq("postgresql+psycopg://u:s3cret@127.0.0.1:1/none", "quota", "show")
    assert done.returncode == 2
    assert "cannot use the ledger" in done.stderr and "s3cret" not in done.stderr


def test_the_seeded_ledger_holds_its_budget(clean_db: str) -> None:
    """The reusable verdict accepts what `_seed` wrote (and so would reject a leak)."""
    now = datetime.now(UTC)
    engine = make_engine(clean_db, pool_size=2)
    with session_scope(make_sessionmaker(engine)) as s:
        _seed(s, "acme", now)
        assert set(assert_budget_holds(s, "acme", now)) == {"day", "month"}
    engine.dispose()
