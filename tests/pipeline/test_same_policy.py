"""One routing-and-retry policy: `LLMProviderManager.call_model` and a queued job, given the
same config, go through the same deployments in the same order (issue 14).

The direct call runs in this process; the job runs in a real `celery worker` subprocess against
the test Postgres and Redis. Both are judged by the simulator's own request log.
"""

from __future__ import annotations

from helpers.jobs import publish, seed, wait_settled
from helpers.llm_config import load_test_config, model
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ledger.models import Attempt
from workers.providers import LLMProviderManager

PROMPT = "Say something about job {i}."


def price(usd: str) -> dict[str, str]:
    return {"input_cost_per_mtok": usd, "output_cost_per_mtok": usd}


def requests_seen(sim) -> list[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    return [(e["provider"], e["model"], e["status"]) for e in sim.log()]


def test_direct_call_and_queued_job_fall_back_through_the_same_deployments(rig, sim) -> None:  # type: ignore[no-untyped-def]
    path = rig.configure(
        [
            model("m", "google", model_id="m-second", **price("1")),
            model("m", "openai", model_id="m-primary", **price("0.1")),  # cheapest: first
            model("backup", "anthropic", model_id="backup-1", **price("5")),
            # Cheaper than every fallback, but not one of m's: neither path may touch it.
            model("other", "cohere", model_id="other-1", **price("0.01")),
        ],
        fallbacks={"m": ["backup"]},
        # a failed deployment cools down for the rest of the test on both paths
        routing={"default_cooldown_s": 60},
    )
    sim.configure("openai", rate_500=1.0)
    sim.configure("google", rate_503=1.0)
    expected = [
        ("openai", "m-primary", 500),
        ("google", "m-second", 503),
        ("anthropic", "backup-1", 200),
    ]

    with LLMProviderManager(config=load_test_config(path), env={}) as manager:
        result = manager.call_model(model_name="m", prompt=PROMPT.format(i=0))
    assert (result["model"], result["deployment"], result["attempts"]) == (
        "backup",
        "anthropic/backup-1",
        3,
    )
    direct = requests_seen(sim)

    sim.reset()  # the log and counters; the faults stay
    rig.start(concurrency=1)
    batch_id, [job_id] = seed(rig.engine, 1, "m", prompt=PROMPT)
    publish(rig.redis_url, [job_id])
    assert wait_settled(rig.engine, batch_id, 60, on_timeout=rig.logs) == {"succeeded": 1}
    queued = requests_seen(sim)

    assert direct == queued == expected
    with Session(rig.engine) as s:
        rows = s.scalars(
            select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.attempt_no)
        )
        attempts = [(a.deployment, a.http_status) for a in rows]
    assert attempts == [
        ("openai/m-primary", 500),
        ("google/m-second", 503),
        ("anthropic/backup-1", 200),
    ]
