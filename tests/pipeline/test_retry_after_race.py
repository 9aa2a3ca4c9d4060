"""Retry-After is honoured right before the call (issue 20, item 12), with real Redis, Postgres,
the simulator and concurrent threads calling `run_job`.

The race from the held-out run, made deterministic: racers plan and take their rate slots while
the deployment is healthy, then stall in the quota reservation (the test holds their tenant's
budget rows locked, as a busy tenant's other jobs would). Meanwhile another tenant's job gets a
429 with `retry-after: 1`. When the racers' reservations go through, not one of them may reach
the deployment inside that second: each gives back its slot, withdraws its attempt row and
reservation, and waits.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

from helpers.jobs import insert_jobs, spec_for
from helpers.llm_config import model
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.ledger.models import Attempt, BudgetWindow, Job
from workers.pipeline import Outcome, run_job

RACERS = 8
RETRY_AFTER_S = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


def _waiting_on_locks(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def test_no_request_reaches_a_deployment_inside_its_retry_after(
    make_runtime, sim, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")], redis_url=redis_url, concurrency=48)
    _, [warm] = insert_jobs(rt.engine, [spec_for("warm up")], "m", tenant="racers")
    assert run_job(warm, rt, _now()) == Outcome("succeeded")  # the tenant's windows exist
    specs = [spec_for(f"race {i}", custom_id=f"r{i}") for i in range(RACERS)]
    _, racers = insert_jobs(rt.engine, specs, "m", tenant="racers")
    _, [trigger] = insert_jobs(rt.engine, [spec_for("trigger")], "m", tenant="other")
    sim.configure("openai", rate_429=1.0, retry_after_s=RETRY_AFTER_S)

    outcomes: dict[uuid.UUID, Outcome | BaseException] = {}

    def race(job_id: uuid.UUID) -> None:
        try:
            outcomes[job_id] = run_job(job_id, rt, _now())
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcomes[job_id] = exc

    with rt.engine.connect() as blocker:
        tx = blocker.begin()
        blocker.execute(
            select(BudgetWindow.id).where(BudgetWindow.scope == "tenant:racers").with_for_update()
        )
        threads = [threading.Thread(target=race, args=(j,)) for j in racers]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while _waiting_on_locks(rt.engine) < RACERS:  # every racer holds a slot, reserving
            assert time.monotonic() < deadline, "the racers never reached the reservation"
            time.sleep(0.02)

        assert run_job(trigger, rt, _now()).status == "retry_later"  # the 429 arrives
        tx.commit()  # the racers' reservations go through now
    for t in threads:
        t.join(30)

    log = sim.log(provider="openai")
    first_429 = min((e for e in log if e["status"] == 429), key=lambda e: e["t"])
    window_end = first_429["t"] + RETRY_AFTER_S
    inside = [e for e in log if first_429["t"] < e["t"] < window_end]
    assert inside == [], f"requests inside the Retry-After window: {inside}"

    assert all(isinstance(o, Outcome) and o.status == "waiting" for o in outcomes.values()), (
        outcomes
    )
    with Session(rt.engine) as s:
        states = s.execute(select(Job.state, Job.attempts).where(Job.id.in_(racers))).all()
        assert set(states) == {("queued", 0)}  # the claim given back: no attempt used
        assert not s.scalar(
            select(func.count()).select_from(Attempt).where(Attempt.job_id.in_(racers))
        )
        reserved = s.scalar(select(func.coalesce(func.sum(BudgetWindow.reserved_tokens), 0)))
        assert reserved == 0  # every withdrawn reservation was released
