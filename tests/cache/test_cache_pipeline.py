"""`run_job` with the response cache, in-process against the simulator and a Postgres ledger:
a hit makes no provider call and takes no quota reservation; misses run normally.

Jobs are stored the way submit stores them (`batch_submit_repo.insert_batch_with_jobs` with keys from
`core.cache_key.keys_for`); no broker here: the test calls `run_job` as the task would.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from helpers.llm_config import model
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import cache_key as cache
from core.ledger import batch_reads_repo, batch_submit_repo, quota_limits_repo
from core.ledger.batch_submit_repo import NewBatch
from core.ledger.db import session_scope
from core.ledger.models import Attempt, BudgetWindow, Job
from schemas.job import ChatMessage, JobSpec
from workers.pipeline import Outcome, run_job

DETERMINISTIC = {"temperature": 0, "input_cost_per_mtok": "1", "output_cost_per_mtok": "2"}


def now() -> datetime:
    return datetime.now(UTC)


def submit(rt, prompts: list[str], use_cache: bool = True, **fields: Any) -> list[uuid.UUID]:  # type: ignore[no-untyped-def]
    specs = [
        JobSpec(
            custom_id=f"c{i}",
            model="m",
            messages=[ChatMessage(role="user", content=p)],
            **fields,
        )
        for i, p in enumerate(prompts)
    ]
    keys = cache.keys_for(specs, rt.config, use_cache)
    batch = NewBatch(tenant="default", use_cache=use_cache)
    with session_scope(rt.sessions) as s:
        _, ids = batch_submit_repo.insert_batch_with_jobs(s, batch, specs, now(), keys)
    return ids


def job_of(rt, job_id: uuid.UUID) -> Job:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        return s.get_one(Job, job_id)


def attempts_of(rt, job_id: uuid.UUID) -> list[Attempt]:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        return list(s.scalars(select(Attempt).where(Attempt.job_id == job_id)))


def day_window(rt) -> BudgetWindow:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        return s.scalars(select(BudgetWindow).where(BudgetWindow.period == "day")).one()


def test_hit_makes_no_call_and_needs_no_quota_room(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **DETERMINISTIC)])
    [first] = submit(rt, ["What is 2+2?"])
    assert run_job(first, rt, now()) == Outcome("succeeded")
    spent = day_window(rt)
    with session_scope(rt.sessions) as s:  # no room left at all today
        quota_limits_repo.set_limits(s, "default", "day", spent.spent_usd, None, now())

    [again, other] = submit(rt, ["What is 2+2?", "Something new"])
    assert run_job(again, rt, now()) == Outcome("succeeded")
    assert run_job(other, rt, now()) == Outcome("parked")  # a real call needs quota room

    assert sim.stats()["total_requests"] == 1
    original, hit = job_of(rt, first), job_of(rt, again)
    assert hit.state == "succeeded" and hit.result == original.result
    assert hit.cache_key == original.cache_key is not None
    [attempt] = attempts_of(rt, again)
    assert attempt.outcome == "cache_hit" and attempt.cached_from == first
    assert attempt.saved_usd == original.cost_usd > 0
    assert attempt.saved_tokens == original.prompt_tokens + original.completion_tokens
    assert (attempt.cost_usd, attempt.reserved_usd, attempt.reserved_tokens) == (0, 0, 0)
    after = day_window(rt)
    assert (after.spent_usd, after.spent_tokens) == (spent.spent_usd, spent.spent_tokens)
    assert (after.reserved_usd, after.reserved_tokens) == (0, 0)


def test_failed_result_is_not_served(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    bad = make_runtime([model("m", "openai", **DETERMINISTIC)], keys={"openai": "bad-key"})
    rt = make_runtime([model("m", "openai", **DETERMINISTIC)])
    [first] = submit(bad, ["Explain caching."])
    assert run_job(first, bad, now()).status == "failed"  # 401: the only deployment is out
    assert job_of(rt, first).cache_key is not None

    [again] = submit(rt, ["Explain caching."])
    assert run_job(again, rt, now()) == Outcome("succeeded")
    assert [a.outcome for a in attempts_of(rt, again)] == ["succeeded"]
    assert sim.stats()["total_requests"] == 2


def test_expired_entry_is_not_served(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **DETERMINISTIC)], cache={"ttl_s": 60})
    [first] = submit(rt, ["Old news?"])
    assert run_job(first, rt, now()).status == "succeeded"

    [late, fresh] = submit(rt, ["Old news?", "Old news?"])
    assert run_job(late, rt, now() + timedelta(seconds=61)).status == "succeeded"
    assert [a.outcome for a in attempts_of(rt, late)] == ["succeeded"]
    assert sim.stats()["total_requests"] == 2
    assert run_job(fresh, rt, now()).status == "succeeded"  # within ttl of `late`'s call
    assert [a.cached_from for a in attempts_of(rt, fresh)] == [late]


def test_worker_config_can_switch_the_cache_off(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    on = make_runtime([model("m", "openai", **DETERMINISTIC)])
    off = make_runtime([model("m", "openai", **DETERMINISTIC)], cache={"enabled": False})
    [first, second] = submit(on, ["Same", "Same"])  # both stored with a key
    assert run_job(first, on, now()).status == "succeeded"
    assert run_job(second, off, now()).status == "succeeded"
    assert sim.stats()["total_requests"] == 2
    assert [a.outcome for a in attempts_of(off, second)] == ["succeeded"]


def test_non_deterministic_and_opted_out_jobs_get_no_key_and_call(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **DETERMINISTIC)])
    warm = submit(rt, ["Tell a story", "Tell a story"], temperature=0.7)
    opted = submit(rt, ["Tell a fact", "Tell a fact"], cache=False)
    batch_off = submit(rt, ["Tell a joke", "Tell a joke"], use_cache=False)
    for job_id in [*warm, *opted, *batch_off]:
        assert job_of(rt, job_id).cache_key is None
        assert run_job(job_id, rt, now()).status == "succeeded"
    assert sim.stats()["total_requests"] == 6
    assert job_of(rt, batch_off[0]).spec["cache"] is False  # --no-cache is kept on the job


def test_status_counts_hits_and_saved_cost(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **DETERMINISTIC)])
    [first] = submit(rt, ["Count me"])
    run_job(first, rt, now())
    ids = submit(rt, ["Count me", "Count me"])
    for job_id in ids:
        run_job(job_id, rt, now())
    with session_scope(rt.sessions) as s:
        batch_id = s.get_one(Job, ids[0]).batch_id
        status = batch_reads_repo.batch_status(s, batch_id)
    assert status is not None and status.counts["succeeded"] == 2
    assert status.cost_usd == 0 and (status.prompt_tokens, status.completion_tokens) == (0, 0)
    assert status.cache_hits == 2
    assert status.cache_saved_usd == 2 * job_of(rt, first).cost_usd > Decimal(0)
    assert status.to_json()["cache"]["hits"] == 2
