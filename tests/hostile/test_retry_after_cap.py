"""Issue 20 item 6 through a real worker: `retry-after: 999999999` from the only deployment
parks the job for at most the configured cap (`providers.<name>.max_retry_after_s`), never
until 2058; with another deployment the job moves on at once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from helpers.jobs import insert_jobs, publish, spec_for, wait_settled
from helpers.llm_config import model, sim_providers
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ledger.models import Attempt, Job

CAP_S = 120.0


def _providers(sim_url: str) -> dict:  # type: ignore[type-arg]
    providers = sim_providers(sim_url)
    providers["openai"]["max_retry_after_s"] = CAP_S
    return providers


def test_the_only_deployment_parks_the_job_for_at_most_the_cap(rig, sim) -> None:  # type: ignore[no-untyped-def]
    rig.configure([model("solo", "openai")], providers=_providers(sim.url))
    sim.configure("openai", hostile="retry_after_unbounded")
    rig.start(concurrency=2)
    _, [job_id] = insert_jobs(rig.engine, [spec_for("Say hi.")], "solo")
    sent = datetime.now(UTC)
    publish(rig.redis_url, [job_id])
    deadline = time.monotonic() + 30
    while True:
        with Session(rig.engine) as s:
            job = s.get(Job, job_id)
            attempts = s.scalars(select(Attempt).where(Attempt.job_id == job_id)).all()
            if job is not None and job.state == "queued" and job.not_before and attempts:
                break
        assert time.monotonic() < deadline, rig.logs()
        time.sleep(0.2)
    assert [a.error_kind for a in attempts] == ["rate_limited"]
    assert job.not_before <= sent + timedelta(seconds=CAP_S + 30), job.not_before
    assert job.not_before >= sent + timedelta(seconds=CAP_S * 0.5)  # the cap, not a backoff


def test_with_another_deployment_the_job_moves_on(rig, sim) -> None:  # type: ignore[no-untyped-def]
    cheap = {"input_cost_per_mtok": "0.1", "output_cost_per_mtok": "0.1"}
    rig.configure(
        [model("pair", "openai", **cheap), model("pair", "anthropic")],
        providers=_providers(sim.url),
    )
    sim.configure("openai", hostile="retry_after_unbounded")
    rig.start(concurrency=2)
    batch_id, ids = insert_jobs(rig.engine, [spec_for("Say hi.")] * 3, "pair")
    publish(rig.redis_url, ids)
    assert wait_settled(rig.engine, batch_id, timeout_s=30, on_timeout=rig.logs) == {"succeeded": 3}
    with Session(rig.engine) as s:
        providers = {j.provider for j in s.scalars(select(Job).where(Job.batch_id == batch_id))}
    assert providers == {"anthropic"}
