"""Issue 19, cost truth, through the real pipeline, the simulator and Postgres.

- With the simulator reporting cached, cache-write and reasoning tokens in every dialect, each
  attempt carries them, and its ledger cost equals genai-prices' `calc_price` on the same usage
  at the attempt's time, to the 8th decimal; the job's result and `llmq results` lines carry
  the classes too.
- Attempts record the tenant charged at the time of the call: a nightly re-assignment of a
  failed job leaves `llmq usage` for the original tenant unchanged.
- A call lost with its worker is booked as `spent_unknown` at its reservation, and a late
  finish replaces that with its real cost.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import genai_prices
import pytest
from helpers.jobs import seed
from helpers.llm_config import model
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.ledger import nightly_repo
from core.ledger.batch_reads_repo import iter_results
from core.ledger.db import session_scope
from core.ledger.models import Attempt, BudgetWindow, Job
from core.ledger.usage_repo import usage_report
from llmq.cli import app
from producer.openai_format import chat_completion
from schemas.settings import Settings
from workers.pipeline import run_job
from workers.providers import REGISTRY
from workers.sweeper import sweep_once

SHARES = {"cached_share": 0.5, "cache_write_share": 0.2, "reasoning_share": 0.5}

# (provider, model id genai-prices knows, the classes its wire format reports apart)
PRICED = [
    ("openai", "gpt-4o-mini", {"cached", "reasoning"}),
    ("anthropic", "claude-haiku-4-5", {"cached", "cache_write"}),
    ("google", "gemini-2.5-flash", {"cached", "reasoning"}),
    ("cohere", "command-r-08-2024", {"cached"}),
    ("huggingface", "meta-llama/Llama-3.1-8B-Instruct:novita", {"cached", "reasoning"}),
]
CLASS_COLUMNS = {
    "cached": "cached_tokens",
    "cache_write": "cache_write_tokens",
    "reasoning": "reasoning_tokens",
}


def now() -> datetime:
    return datetime.now(UTC)


def drive(rt, job_id: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    for _ in range(12):
        if run_job(job_id, rt, now()).countdown_s is None:
            return
    raise AssertionError("job kept asking to run")


def attempts(rt) -> list[Attempt]:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        return list(s.scalars(select(Attempt).order_by(Attempt.started_at)))


def price_sheet(provider: str, model_id: str, a: Attempt) -> Decimal:
    """What genai-prices says the provider charges for this attempt's usage at its time."""
    provider_id, ref = REGISTRY[provider].genai_ref(model_id)
    usage = genai_prices.Usage(
        input_tokens=a.prompt_tokens,
        cache_read_tokens=a.cached_tokens or 0,
        cache_write_tokens=a.cache_write_tokens or 0,
        output_tokens=a.completion_tokens,
        output_reasoning_tokens=a.reasoning_tokens or 0,
    )
    calc = genai_prices.calc_price(
        usage, ref, provider_id=provider_id, genai_request_timestamp=a.started_at
    )
    # NUMERIC(18,8) rounds half away from zero, as ROUND_HALF_UP does for a positive cost
    return Decimal(calc.total_price).quantize(Decimal("1E-8"), ROUND_HALF_UP)


@pytest.mark.parametrize(("provider", "model_id", "classes"), PRICED, ids=[p[0] for p in PRICED])
def test_every_dialect_books_the_provider_price_of_its_whole_usage(
    make_runtime, sim, provider, model_id, classes
) -> None:  # type: ignore[no-untyped-def]
    sim.configure(provider, **SHARES)
    rt = make_runtime([model("m", provider, model_id=model_id, max_tokens=300)])
    long_prompt = "Summarise the shared system context for item {i}. " + "context " * 400
    _, ids = seed(rt.engine, 3, "m", prompt=long_prompt)
    for jid in ids:
        drive(rt, jid)

    rows = attempts(rt)
    assert [a.outcome for a in rows] == ["succeeded"] * 3
    for a in rows:
        for cls, column in CLASS_COLUMNS.items():
            value = getattr(a, column)
            # reported classes are carried; the others stay inside their totals (NULL = 0)
            assert (value is not None and value > 0) if cls in classes else value is None, column
        assert a.cost_usd == price_sheet(provider, model_id, a)
        assert a.tenant == "default"
    # the ledger's tokens are what the simulator billed, class by class
    billed = sim.stats()["providers"][provider]["models"][model_id]
    assert sum(a.prompt_tokens for a in rows) == billed["prompt_tokens"]
    assert sum(a.completion_tokens for a in rows) == billed["completion_tokens"]
    # the cost is not the flat rate: caching makes it cheaper than every token at input price
    first = rows[0]
    assert (first.cached_tokens or 0) * 2 >= first.prompt_tokens - 2


def test_results_and_openai_lines_carry_the_classes(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    sim.configure("openai", **SHARES)
    rt = make_runtime([model("m", "openai", model_id="gpt-4o-mini")])
    batch_id, [jid] = seed(rt.engine, 1, "m", prompt="context " * 200)
    drive(rt, jid)
    [a] = attempts(rt)
    with Session(rt.engine) as s:
        job = s.get_one(Job, jid)
        [line] = list(iter_results(s, batch_id))
    assert job.result["usage"]["cached_tokens"] == a.cached_tokens > 0
    assert job.result["usage"]["reasoning_tokens"] == a.reasoning_tokens > 0
    usage = line["usage"]
    assert (usage["cached_tokens"], usage["reasoning_tokens"]) == (
        a.cached_tokens,
        a.reasoning_tokens,
    )
    assert usage["cache_write_tokens"] == 0  # OpenAI reports no cache writes
    body = chat_completion(line, 0)["usage"]
    assert body["prompt_tokens_details"] == {"cached_tokens": a.cached_tokens}
    assert body["completion_tokens_details"] == {"reasoning_tokens": a.reasoning_tokens}


def test_nightly_reassignment_leaves_the_original_tenants_usage_unchanged(
    make_runtime, sim
) -> None:  # type: ignore[no-untyped-def]
    """A failed-but-billed job of `acme` is re-run by the nightly run under its own tenant:
    acme's past spend stays acme's; the nightly tenant is charged only for its own calls."""
    rt = make_runtime([model("m", "openai", model_id="gpt-4o-mini")])
    sim.configure("openai", rate_refusal=1.0)  # answered and billed, but a refusal
    _, [jid] = seed(rt.engine, 1, "m", tenant="acme")
    drive(rt, jid)
    since = datetime(2000, 1, 1, tzinfo=UTC)
    with session_scope(rt.sessions) as s:
        assert s.get_one(Job, jid).state == "failed"
        [before] = usage_report(s, since, tenant="acme")
    assert before.cost_usd > 0 and before.attempts >= 1

    sim.configure("openai", rate_refusal=0.0)
    with session_scope(rt.sessions) as s:
        run = nightly_repo.open_run(s, "nightly", date.today(), "retry", now())
        kind = s.get_one(Job, jid).error["type"]
        assert nightly_repo.retry_failed(s, run.id, "night", [kind], 1, now(), 10) == [jid]
    with session_scope(rt.sessions) as s:
        assert s.get_one(Job, jid).tenant == "night"
        assert usage_report(s, since, tenant="acme") == [before]  # history not rewritten
    drive(rt, jid)
    with session_scope(rt.sessions) as s:
        assert s.get_one(Job, jid).state == "succeeded"
        assert usage_report(s, since, tenant="acme") == [before]
        [night] = usage_report(s, since, tenant="night")
        by_tenant = {r.group["tenant"]: r for r in usage_report(s, since, by=("tenant",))}
    assert (night.attempts, night.succeeded) == (1, 1) and night.cost_usd > 0
    assert by_tenant["acme"].cost_usd == before.cost_usd
    assert {a.tenant for a in attempts(rt)} == {"acme", "night"}


def test_usage_groups_by_tenant_provider_model_day_and_lane(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", model_id="gpt-4o-mini")])
    _, ids = seed(rt.engine, 2, "m")
    for jid in ids:
        drive(rt, jid)
    since = datetime(2000, 1, 1, tzinfo=UTC)
    with session_scope(rt.sessions) as s:
        rows = usage_report(s, since, by=("tenant", "provider", "model", "day", "lane"))
    [row] = rows
    assert row.group["lane"] == "sync" and row.group["model"] == "gpt-4o-mini"
    assert row.group["day"] == datetime.now(UTC).date().isoformat() and row.attempts == 2


def test_a_lost_call_counts_as_spent_unknown_until_its_late_finish_books_the_real_cost(
    make_runtime, sim, clean_db
) -> None:  # type: ignore[no-untyped-def]
    """The worker is presumed dead mid-call (lease expired): the sweeper books the attempt's
    reservation as spent (the provider may bill it) instead of releasing it; `llmq usage`
    shows it on its own line; when the call does finish, its real cost replaces it."""
    rt = make_runtime([model("m", "openai", model_id="gpt-4o-mini")], lease_s=1.0)
    sim.configure("openai", latency_ms=2500)
    _, [jid] = seed(rt.engine, 1, "m", tenant="acme")
    result: dict[str, str] = {}
    call = threading.Thread(target=lambda: result.update(out=run_job(jid, rt, now()).status))
    call.start()
    deadline = time.monotonic() + 10
    while not attempts(rt) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.2)  # the 1 s lease runs out mid-call
    counts = sweep_once(rt.sessions, Settings(lease_s=1.0), now(), backlog=None, publish=noop)
    assert counts.lost_attempts == 1
    [lost] = attempts(rt)
    assert lost.outcome == "lost" and lost.reserved_usd > 0
    since = datetime(2000, 1, 1, tzinfo=UTC)
    with session_scope(rt.sessions) as s:
        [row] = usage_report(s, since, tenant="acme")
        spent = spent_and_reserved(s)
    assert (row.lost, row.spent_unknown_usd) == (1, lost.reserved_usd)
    assert (row.spent_unknown_tokens, row.cost_usd) == (lost.reserved_tokens, 0)
    assert spent == (lost.reserved_tokens, lost.reserved_usd, 0, Decimal(0))  # per window
    shown = CliRunner().invoke(
        app,
        ["usage", "--tenant", "acme", "--since", "1d"],
        env={"LLMQ_DATABASE_URL": clean_db, "COLUMNS": "200"},
    )
    assert shown.exit_code == 0, shown.output
    [line] = [ln for ln in shown.output.splitlines() if "spent_unknown" in ln]
    assert f"${lost.reserved_usd:,.4f}" in line  # its own line, at the reserved worst case

    call.join(15)
    assert result == {"out": "superseded"}  # the sweeper took the job back
    [late] = attempts(rt)
    assert late.outcome == "superseded" and late.cost_usd is not None and late.cost_usd > 0
    billed = sim.stats()["providers"]["openai"]["models"]["gpt-4o-mini"]
    with session_scope(rt.sessions) as s:
        [row] = usage_report(s, since, tenant="acme")
        spent = spent_and_reserved(s)
    assert (row.lost, row.spent_unknown_usd, row.cost_usd) == (0, 0, late.cost_usd)
    tokens = billed["prompt_tokens"] + billed["completion_tokens"]
    assert spent == (tokens, late.cost_usd, 0, Decimal(0))  # the real cost replaced it


def noop(ids: object) -> None:
    """A publish that sends nothing (the test drives the job itself)."""


def spent_and_reserved(s: Session) -> tuple[int, Decimal, int, Decimal]:
    """The tenant's day window: spent tokens and USD, reserved tokens and USD."""
    w = s.scalars(
        select(BudgetWindow).where(
            BudgetWindow.scope == "tenant:acme", BudgetWindow.period == "day"
        )
    ).one()
    return w.spent_tokens, w.spent_usd, w.reserved_tokens, w.reserved_usd
