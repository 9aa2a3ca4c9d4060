"""Admission can be undone: a refused reservation or a superseded claim gives back what it took.

Real Postgres (the reservation and the claim fence) and real Redis (the rate windows and the
probe lease, read back through Redis itself), with the simulator behind the deployment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import redis
from helpers.jobs import seed
from helpers.llm_config import FAST_ROUTING, model
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import AuthFailed
from core.ledger import jobs_repo, quota_limits_repo
from core.ledger.db import session_scope
from core.ledger.models import Attempt, BudgetWindow
from workers.admission import Superseded, admit
from workers.pipeline import Outcome, run_job
from workers.routing.select import RouteRequest, rank_candidates
from workers.run_types import Clock, ParsedJob

DEP = "openai/m"
LIMITED = {"rpm": 100, "tpm": 1_000_000, "input_cost_per_mtok": "1", "output_cost_per_mtok": "2"}


def now() -> datetime:
    return datetime.now(UTC)


def bucket_level(redis_url: str, dep: str = DEP) -> tuple[int, int]:
    """(requests, tokens) the deployment's rate windows hold, read straight from Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        requests = client.zcard(f"llmq:h:{{{dep}}}:rq")
        tokens = int(client.hget(f"llmq:h:{{{dep}}}:rl", "tsum") or 0)
    finally:
        client.close()
    return requests, tokens


def test_a_refused_reservation_gives_its_rate_slot_back(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **LIMITED)], redis_url=redis_url)
    _, (first, second) = seed(rt.engine, 2, "m")
    assert run_job(first, rt, now()) == Outcome("succeeded")
    before = bucket_level(redis_url)
    assert before[0] == 1 and before[1] > 0  # the served job's slot is in the window
    with session_scope(rt.sessions) as s:  # no room left for a second call
        quota_limits_repo.set_limits(s, "default", "day", Decimal("0.000001"), None, now())

    assert run_job(second, rt, now()) == Outcome("parked")

    assert bucket_level(redis_url) == before  # level before == after: nothing burnt
    assert sim.stats()["total_requests"] == 1
    with Session(rt.engine) as s:
        assert s.scalar(select(func.count()).select_from(Attempt)) == 1  # no row for the refusal
        assert all(w.reserved_usd == 0 for w in s.scalars(select(BudgetWindow)))


def test_a_superseded_claim_releases_its_probe_lease(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **LIMITED)], redis_url=redis_url)
    t0 = now()
    # The deployment's circuit opened (a bad key) long enough ago to be half-open at t0.
    opened_at = t0.timestamp() - FAST_ROUTING["circuit_open_s"] - 1
    rt.health.record_failure(DEP, AuthFailed("bad key"), opened_at, rt.config.routing)
    assert rt.health.snapshot([DEP], t0.timestamp()).get(DEP).circuit == "half_open"
    _, [jid] = seed(rt.engine, 1, "m")
    with session_scope(rt.sessions) as s:
        old = jobs_repo.claim_job(s, jid, t0, lease_s=1.0)
    with session_scope(rt.sessions) as s:  # the lease ran out; a newer claim owns the job
        assert jobs_repo.claim_job(s, jid, t0 + timedelta(seconds=2), lease_s=60.0) is not None
    assert old is not None
    request = RouteRequest("m", (), None, None)
    job = ParsedJob(old, request, None, prompt_bound=10)
    snapshot = rt.health.snapshot([DEP], t0.timestamp())
    plan = rank_candidates(request, rt.config, snapshot, rt.prices, rt.has_key, t0.timestamp())

    assert admit(rt, job, plan, snapshot, Clock.starting(t0)) == Superseded()

    later = t0.timestamp() + 1
    assert rt.health.snapshot([DEP], later).get(DEP).circuit == "half_open"  # no probe held
    assert rt.health.claim_probe(DEP, later)  # the next caller may probe at once
    assert bucket_level(redis_url) == (0, 0)  # and its rate slot is back too
    assert sim.stats()["total_requests"] == 0
