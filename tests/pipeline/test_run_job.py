"""`run_job` against the real simulator and a real Postgres ledger, one run at a time.

Each test seeds jobs, calls `run_job` the way the task does (re-running it when the outcome asks
for a countdown message), and checks the ledger: the job, its attempt rows and the quota
windows. No Celery here; tests/pipeline/test_worker_*.py run the same path in real workers.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis
from helpers.jobs import insert_jobs, seed, spec_for
from helpers.llm_config import load_test_config, model, write_llm_config
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.errors import InfraError
from core.ledger import jobs_repo, quota_limits_repo
from core.ledger.db import session_scope
from core.ledger.jobs_repo import AttemptStart
from core.ledger.migrate import upgrade
from core.ledger.models import Attempt, BudgetWindow, Job
from core.quota import next_reset
from schemas.settings import Settings
from workers.pipeline import NOOP, Outcome, run_job
from workers.routing.health import RedisHealthStore
from workers.runtime import build_runtime

PRICED = {"input_cost_per_mtok": "1", "output_cost_per_mtok": "2"}


def now() -> datetime:
    return datetime.now(UTC)


def job_of(rt, job_id: uuid.UUID) -> Job:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        return s.get_one(Job, job_id)


def attempts_of(rt, job_id: uuid.UUID) -> list[Attempt]:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        stmt = select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.attempt_no)
        return list(s.scalars(stmt))


def windows(rt) -> list[BudgetWindow]:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        return list(s.scalars(select(BudgetWindow)))


def drive(rt, job_id: uuid.UUID, max_runs: int = 12) -> list[Outcome]:  # type: ignore[no-untyped-def]
    """Run the job like the task would until no further message is due."""
    outcomes = []
    for _ in range(max_runs):
        out = run_job(job_id, rt, now())
        outcomes.append(out)
        if out.countdown_s is None:
            return outcomes
        time.sleep(out.countdown_s)
    raise AssertionError(f"job still wants to run after {max_runs} runs: {outcomes}")


def sim_tokens(sim, provider: str, model_name: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    m = sim.stats()["providers"][provider]["models"][model_name]
    return m["prompt_tokens"], m["completion_tokens"]


# ---- success, duplicates, leases --------------------------------------------------------


def test_success_writes_result_usage_cost_and_settles_quota(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **PRICED)])
    _, [jid] = seed(rt.engine, 1, "m")

    assert run_job(jid, rt, now()) == Outcome("succeeded")

    job = job_of(rt, jid)
    prompt, completion = sim_tokens(sim, "openai", "m")
    assert (job.state, job.attempts, job.provider, job.served_model) == (
        "succeeded",
        1,
        "openai",
        "m",
    )
    assert (job.prompt_tokens, job.completion_tokens) == (prompt, completion)
    assert job.result["text"].startswith("sim:")
    assert job.result["model"] == "m" and job.result["provider"] == "openai"
    expected_cost = (Decimal(prompt) * 1 + Decimal(completion) * 2) / Decimal(1_000_000)
    assert job.cost_usd == expected_cost
    [attempt] = attempts_of(rt, jid)
    assert (attempt.outcome, attempt.http_status, attempt.deployment) == (
        "succeeded",
        200,
        "openai/m",
    )
    assert (attempt.prompt_tokens, attempt.completion_tokens) == (prompt, completion)
    assert attempt.cost_usd == expected_cost and attempt.reserved_tokens >= prompt + completion
    tenant_windows = windows(rt)
    assert {w.period for w in tenant_windows} == {"day", "month"}
    for w in tenant_windows:
        assert (w.reserved_tokens, w.reserved_usd) == (0, 0)
        assert (w.spent_tokens, w.spent_usd) == (prompt + completion, expected_cost)


def test_duplicate_message_is_a_noop(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")])
    _, [jid] = seed(rt.engine, 1, "m")

    assert run_job(jid, rt, now()).status == "succeeded"
    assert run_job(jid, rt, now()) == NOOP
    assert run_job(uuid.uuid4(), rt, now()) == NOOP  # a message for a job that does not exist

    assert sim.stats()["total_requests"] == 1
    assert len(attempts_of(rt, jid)) == 1 and job_of(rt, jid).attempts == 1


def test_job_held_under_a_live_lease_is_left_alone(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")])
    _, [jid] = seed(rt.engine, 1, "m")
    with session_scope(rt.sessions) as s:
        assert jobs_repo.claim_job(s, jid, now(), lease_s=300) is not None  # another worker

    assert run_job(jid, rt, now()) == NOOP
    assert sim.stats()["total_requests"] == 0 and job_of(rt, jid).state == "running"


def test_expired_lease_is_reclaimed_with_the_next_attempt_number(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")])
    _, [jid] = seed(rt.engine, 1, "m")
    long_ago = now() - timedelta(seconds=400)
    with session_scope(rt.sessions) as s:  # a worker that claimed, started a call and died
        dead = jobs_repo.claim_job(s, jid, long_ago, lease_s=300)
        assert dead is not None
        start = AttemptStart("openai", "m", "openai/m", long_ago, 0, Decimal(0), 0)
        assert jobs_repo.start_attempt(s, dead, start)

    assert run_job(jid, rt, now()) == Outcome("succeeded")
    job = job_of(rt, jid)
    assert (job.state, job.attempts) == ("succeeded", 2)
    assert [(a.attempt_no, a.outcome) for a in attempts_of(rt, jid)] == [
        (1, "started"),  # left for the sweeper to close as lost
        (2, "succeeded"),
    ]


def test_superseded_attempt_keeps_its_spend_but_never_overwrites_the_job(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **PRICED)], lease_s=1.0)
    sim.configure("openai", latency_ms=2500)
    _, [jid] = seed(rt.engine, 1, "m")
    results: dict[str, Outcome] = {}

    def run(name: str) -> None:
        results[name] = run_job(jid, rt, now())

    old = threading.Thread(target=run, args=("old",))
    old.start()
    deadline = time.monotonic() + 10
    while not attempts_of(rt, jid) and time.monotonic() < deadline:  # old is now in its call
        time.sleep(0.05)
    time.sleep(1.2)  # its 1 s lease runs out mid-call
    new = threading.Thread(target=run, args=("new",))
    new.start()
    old.join(15)
    new.join(15)

    assert results == {"old": Outcome("superseded"), "new": Outcome("succeeded")}
    first, second = attempts_of(rt, jid)
    assert (first.outcome, second.outcome) == ("superseded", "succeeded")
    assert first.prompt_tokens > 0 and first.cost_usd is not None  # the provider billed it
    job = job_of(rt, jid)
    assert (job.attempts, job.prompt_tokens, job.cost_usd) == (
        2,
        second.prompt_tokens,
        second.cost_usd,
    )
    prompt, completion = sim_tokens(sim, "openai", "m")
    for w in windows(rt):  # both calls are booked; nothing stays reserved
        assert w.reserved_tokens == 0 and w.spent_tokens == prompt + completion
        assert w.spent_usd == first.cost_usd + second.cost_usd


# ---- failures -----------------------------------------------------------------------------


def test_rate_limited_job_waits_at_least_retry_after(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")])
    sim.configure("openai", rate_429=1.0, retry_after_s=2)
    _, [jid] = seed(rt.engine, 1, "m")
    t0 = now()

    out = run_job(jid, rt, t0)
    assert out.status == "retry_later" and out.countdown_s is not None and out.countdown_s >= 2
    job = job_of(rt, jid)
    assert (job.state, job.attempts) == ("queued", 1)
    assert job.not_before >= t0 + timedelta(seconds=2)
    [a] = attempts_of(rt, jid)
    assert (a.outcome, a.http_status, a.error_kind) == ("failed", 429, "rate_limited")
    assert run_job(jid, rt, now()) == NOOP  # an early duplicate message finds it not due

    sim.configure("openai", rate_429=0.0)
    assert run_job(jid, rt, job.not_before) == Outcome("succeeded")
    second = attempts_of(rt, jid)[1]
    assert second.outcome == "succeeded" and second.waited_ms >= 2000
    assert all(w.reserved_tokens == 0 for w in windows(rt))


def test_provider_down_falls_back_to_another_deployment(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    cheap = model("m", "openai", input_cost_per_mtok="0.1", output_cost_per_mtok="0.1")
    dear = model("m", "anthropic", input_cost_per_mtok="5", output_cost_per_mtok="5")
    rt = make_runtime([dear, cheap])
    sim.configure("openai", down=True)
    _, [jid] = seed(rt.engine, 1, "m")

    outcomes = drive(rt, jid)

    assert [o.status for o in outcomes] == ["fallback", "succeeded"]
    assert outcomes[0].countdown_s == 0
    job = job_of(rt, jid)
    assert (job.state, job.provider, job.attempts) == ("succeeded", "anthropic", 2)
    assert [(a.deployment, a.http_status) for a in attempts_of(rt, jid)] == [
        ("openai/m", 503),
        ("anthropic/m", 200),
    ]


def test_auth_failure_excludes_the_deployment_for_the_job(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    cheap = model("m", "openai", input_cost_per_mtok="0.1", output_cost_per_mtok="0.1")
    dear = model("m", "anthropic", input_cost_per_mtok="5", output_cost_per_mtok="5")
    rt = make_runtime([cheap, dear], keys={"openai": "bad-key"})
    _, [jid] = seed(rt.engine, 1, "m")

    assert [o.status for o in drive(rt, jid)] == ["fallback", "succeeded"]
    job = job_of(rt, jid)
    assert job.provider == "anthropic" and job.routing_state == {"excluded": ["openai/m"]}
    assert attempts_of(rt, jid)[0].error_kind == "auth_failed"


@pytest.mark.parametrize(
    ("entry", "kind", "status"),
    [
        (model("m", "openai", model_id="missing-model"), "model_not_found", 404),
        (model("m", "openai", model_id="tiny-model", max_tokens=4000), "context_too_long", 400),
    ],
    ids=["model-not-found", "context-too-long"],
)
def test_unservable_request_fails_after_one_call(make_runtime, sim, entry, kind, status) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([entry])
    _, [jid] = seed(rt.engine, 1, "m")

    assert drive(rt, jid) == [Outcome("failed")]
    job = job_of(rt, jid)
    assert (job.state, job.error["type"], job.error["status"]) == ("failed", kind, status)
    [a] = attempts_of(rt, jid)
    assert (a.outcome, a.error_kind) == ("failed", kind)
    for w in windows(rt):
        assert (w.reserved_tokens, w.spent_tokens) == (0, 0)


def test_attempt_budget_covers_every_retry(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")], routing={"max_attempts": 3})
    sim.configure("openai", rate_500=1.0)
    _, [jid] = seed(rt.engine, 1, "m")

    outcomes = drive(rt, jid, max_runs=30)

    assert outcomes[-1] == Outcome("failed")
    job = job_of(rt, jid)
    assert (job.state, job.attempts, job.error["type"]) == ("failed", 3, "attempts_exhausted")
    assert [a.http_status for a in attempts_of(rt, jid)] == [500, 500, 500]
    assert sim.stats()["total_requests"] == 3


# ---- no call at all -------------------------------------------------------------------------


def test_unknown_model_or_missing_key_fails_without_a_call(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")], keys={"openai": ""})
    _, ids = insert_jobs(
        rt.engine, [spec_for("hi", custom_id="a"), spec_for("hi", custom_id="b", model="nope")], "m"
    )

    for jid in ids:
        assert run_job(jid, rt, now()) == Outcome("failed")
        job = job_of(rt, jid)
        assert (job.state, job.attempts, job.error["type"]) == ("failed", 0, "no_deployment")
    assert "no credentials" in job_of(rt, ids[0]).error["message"]
    assert sim.stats()["total_requests"] == 0


def test_quota_exceeded_parks_the_job_until_the_window_resets(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **PRICED)])
    t0 = now()
    with session_scope(rt.sessions) as s:
        quota_limits_repo.set_limits(s, "default", "day", None, 10, t0)
    _, [jid] = seed(rt.engine, 1, "m")

    assert run_job(jid, rt, t0) == Outcome("parked")
    job = job_of(rt, jid)
    assert (job.state, job.attempts, job.not_before) == ("quota_exceeded", 0, next_reset(t0))
    assert (
        job.error["type"] == "quota_exceeded"
        and "tenant:default day token limit" in job.error["message"]
    )
    assert attempts_of(rt, jid) == [] and sim.stats()["total_requests"] == 0
    assert all(w.reserved_tokens == 0 for w in windows(rt))


def test_no_rate_limit_headroom_reschedules_without_using_an_attempt(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", rpm=1)])
    _, (first, second) = seed(rt.engine, 2, "m")

    assert run_job(first, rt, now()) == Outcome("succeeded")
    out = run_job(second, rt, now())

    assert out.status == "waiting" and out.countdown_s is not None and out.countdown_s > 0
    job = job_of(rt, second)
    assert (job.state, job.attempts) == ("queued", 0) and job.not_before is not None
    assert job.routing_state["wait_ms"] > 0
    assert attempts_of(rt, second) == [] and sim.stats()["total_requests"] == 1


def test_unreadable_spec_fails_the_job(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")])
    _, [jid] = seed(rt.engine, 1, "m")
    with Session(rt.engine) as s, s.begin():
        s.execute(update(Job).where(Job.id == jid).values(spec={"nothing": True}))

    assert run_job(jid, rt, now()) == Outcome("failed")
    assert job_of(rt, jid).error["type"] == "bad_request"


def test_health_store_outage_hands_the_claim_back(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")])
    dead_redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    broken = dataclasses.replace(rt, health=RedisHealthStore(dead_redis))
    _, [jid] = seed(rt.engine, 1, "m")

    with pytest.raises(InfraError):  # the task retries it with back-off
        run_job(jid, broken, now())

    job = job_of(rt, jid)
    assert (job.state, job.attempts, job.lease_until) == ("queued", 0, None)  # not leased away
    assert run_job(jid, rt, now()) == Outcome("succeeded")


def test_embedded_sqlite_ledger_runs_the_same_pipeline(sim, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    path = write_llm_config(tmp_path / "llm_config.yaml", sim.url, [model("m", "cohere", **PRICED)])
    settings = Settings(database_url=url, embedded=True)
    rt = build_runtime(settings, load_test_config(path), concurrency=2)
    try:
        _, [jid] = seed(rt.engine, 1, "m")
        assert run_job(jid, rt, now()) == Outcome("succeeded")
        assert run_job(jid, rt, now()) == NOOP
        job = job_of(rt, jid)
        assert (job.state, job.provider, job.attempts) == ("succeeded", "cohere", 1)
        assert [a.outcome for a in attempts_of(rt, jid)] == ["succeeded"]
        assert all(w.reserved_tokens == 0 and w.spent_tokens > 0 for w in windows(rt))
    finally:
        rt.close()
