"""Routing, retry and rate limits with real worker processes (issue 4 integration).

Every test runs real `celery -A workers worker` subprocesses against the simulator, the test
Postgres and Redis (health and rate-limit state shared through Redis, as in production), and
judges by the ledger and the simulator's own request log.
"""

from __future__ import annotations

import time

from helpers.jobs import publish, seed, wait_settled
from helpers.llm_config import model
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ledger.models import Attempt, Job

# Requests already dispatched when a 429 came back may still arrive just after it: the
# admission checks ran before the cooldown existed. Everything later must respect it.
IN_FLIGHT_GRACE_S = 0.5


def jobs_of(engine, batch_id) -> list[Job]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return list(s.scalars(select(Job).where(Job.batch_id == batch_id)))


def attempt_counts(engine, batch_id) -> dict:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        rows = s.execute(
            select(Attempt.job_id, func.count())
            .join(Job, Job.id == Attempt.job_id)
            .where(Job.batch_id == batch_id)
            .group_by(Attempt.job_id)
        )
        return dict(rows.all())


def requests_to(sim, provider: str) -> int:  # type: ignore[no-untyped-def]
    return sim.stats()["providers"].get(provider, {}).get("requests", 0)


def wait_for(condition, timeout_s: float, what: str, rig) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{rig.logs()}"
        time.sleep(0.1)


def test_primary_down_every_job_is_served_by_the_fallback_model(rig, sim) -> None:  # type: ignore[no-untyped-def]
    rig.configure(
        [model("primary", "openai"), model("backup", "anthropic")],
        fallbacks={"primary": ["backup"]},
    )
    sim.configure("openai", down=True)
    rig.start(concurrency=4)
    batch_id, ids = seed(rig.engine, 30, "primary")
    publish(rig.redis_url, ids)

    counts = wait_settled(rig.engine, batch_id, 60, on_timeout=rig.logs)

    assert counts == {"succeeded": 30}
    jobs = jobs_of(rig.engine, batch_id)
    assert {(j.provider, j.result["model"]) for j in jobs} == {("anthropic", "backup")}
    assert all(j.attempts <= 6 for j in jobs)


def test_the_cheapest_healthy_deployment_serves_every_job(rig, sim) -> None:  # type: ignore[no-untyped-def]
    rig.configure(
        [
            model("m", "anthropic", input_cost_per_mtok="3", output_cost_per_mtok="15"),
            model("m", "openai", input_cost_per_mtok="0.1", output_cost_per_mtok="0.4"),
            model("m", "google", input_cost_per_mtok="0.5", output_cost_per_mtok="1"),
        ]
    )
    sim.configure("openai", down=True)  # the cheapest is unhealthy: google is the cheapest left
    rig.start(concurrency=4)
    batch_id, ids = seed(rig.engine, 30, "m")
    publish(rig.redis_url, ids)

    counts = wait_settled(rig.engine, batch_id, 60, on_timeout=rig.logs)

    assert counts == {"succeeded": 30}
    assert {j.provider for j in jobs_of(rig.engine, batch_id)} == {"google"}
    assert requests_to(sim, "anthropic") == 0


def test_429_burst_no_request_before_retry_after_has_passed(rig, sim) -> None:  # type: ignore[no-untyped-def]
    rig.configure([model("m", "openai")])
    sim.configure("openai", rate_429=1.0, retry_after_s=2.0, latency_ms=20)
    rig.start(count=2, concurrency=3)
    batch_id, ids = seed(rig.engine, 12, "m")
    publish(rig.redis_url, ids)

    # Let two rounds of 429s happen (the second after the first cooldown), then recover.
    def limited_at() -> list[float]:
        return [e["t"] for e in sim.log(provider="openai") if e["status"] == 429]

    wait_for(lambda: limited_at(), 30, "a 429", rig)
    first = min(limited_at())
    wait_for(lambda: max(limited_at()) >= first + 2.0, 30, "a 429 after the cooldown", rig)
    sim.configure("openai", rate_429=0.0)
    counts = wait_settled(rig.engine, batch_id, 60, on_timeout=rig.logs)

    assert counts == {"succeeded": 12}
    log = sim.log(provider="openai")
    limited = [e for e in log if e["status"] == 429]
    assert len(limited) >= 2  # a burst, then at least one more try after the cooldown
    for hit in limited:
        start, end = hit["t"] + IN_FLIGHT_GRACE_S, hit["t"] + hit["retry_after"]
        early = [e for e in log if start <= e["t"] < end]
        assert early == [], f"requests during the cooldown after the 429 at {hit['t']}: {early}"


def test_rpm_limit_holds_across_four_worker_processes(rig, sim) -> None:  # type: ignore[no-untyped-def]
    rpm = 8
    rig.configure([model("m", "openai", rpm=rpm)])
    sim.configure("openai", rpm=rpm)  # the simulator would answer 429 past the limit
    rig.start(count=4, concurrency=3)
    batch_id, ids = seed(rig.engine, 2 * rpm + 4, "m")
    publish(rig.redis_url, ids)

    wait_for(lambda: requests_to(sim, "openai") >= rpm, 60, f"{rpm} requests", rig)
    time.sleep(3.0)  # every worker keeps trying; none may get through within the minute

    log = sim.log(provider="openai")
    assert len(log) == rpm, f"{len(log)} requests inside one minute with rpm={rpm}"
    assert log[-1]["t"] - log[0]["t"] < 60
    assert all(e["status"] == 200 for e in log)
    jobs = jobs_of(rig.engine, batch_id)
    assert sum(j.state == "succeeded" for j in jobs) == rpm
    # the others wait without using up attempts
    assert all(j.attempts == 0 for j in jobs if j.state != "succeeded")


def test_no_job_exceeds_its_attempt_budget(rig, sim) -> None:  # type: ignore[no-untyped-def]
    budget = 3
    rig.configure(
        [model("m", "openai")],
        routing={"max_attempts": budget, "circuit_failures": 1000, "circuit_min_calls": 1000},
    )
    sim.configure("openai", rate_500=0.6)
    rig.start(concurrency=4)
    batch_id, ids = seed(rig.engine, 30, "m")
    publish(rig.redis_url, ids)

    counts = wait_settled(rig.engine, batch_id, 90, on_timeout=rig.logs)

    assert counts.get("succeeded", 0) + counts.get("failed", 0) == 30
    assert counts.get("failed", 0) > 0  # the budget did end some jobs
    per_job = attempt_counts(rig.engine, batch_id)
    assert max(per_job.values()) <= budget
    for job in jobs_of(rig.engine, batch_id):
        assert job.attempts == per_job[job.id] <= budget
        if job.state == "failed":
            assert job.error["type"] == "attempts_exhausted" and job.attempts == budget
    assert sum(per_job.values()) == requests_to(sim, "openai")
