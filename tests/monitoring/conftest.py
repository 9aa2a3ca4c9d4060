"""Fixture ledger rows for the monitoring tests.

The rows are test data written straight through the ORM (the pipeline's own writes are covered
by the end-to-end test); quota windows go through quota_repo like production.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from core.ledger import quota_limits_repo, quota_repo
from core.ledger.models import Attempt, Batch, Job

NOW = datetime.now(UTC)
D = Decimal
DEP_A, DEP_B = "openai/gpt-a", "anthropic/claude-b"


def _job(batch: uuid.UUID, n: int, state: str) -> Job:
    return Job(
        id=uuid.uuid4(), batch_id=batch, line_no=n, custom_id=f"c{n}", tenant="acme",
        model="m", spec={}, state=state, attempts=0, created_at=NOW,
    )  # fmt: skip


def _att(job: Job, n: int, dep: str, outcome: str, **kw: object) -> Attempt:
    provider, model = dep.split("/")
    return Attempt(
        job_id=job.id, attempt_no=n, provider=provider, model=model, deployment=dep,
        outcome=outcome, started_at=NOW, tenant=job.tenant, **kw,
    )  # fmt: skip


@pytest.fixture()
def ledger(engine, clean_db):  # type: ignore[no-untyped-def]
    batch = uuid.uuid4()
    with Session(engine) as s, s.begin():
        s.add(Batch(id=batch, tenant="acme", total_jobs=6, created_at=NOW))
        s.flush()
        j = [_job(batch, i, st) for i, st in enumerate(
            ["succeeded", "succeeded", "running", "queued", "succeeded", "succeeded"])]  # fmt: skip
        s.add_all(j)
        s.flush()
        a, b = DEP_A, DEP_B
        s.add_all([
            # job 0: 429 then success on the same deployment -> one retry
            _att(j[0], 1, a, "failed", latency_ms=50, http_status=429, error_kind="rate_limited"),
            _att(j[0], 2, a, "succeeded", latency_ms=300, prompt_tokens=10, completion_tokens=5,
                 cost_usd=D("0.001")),
            # job 1: 503 then another provider -> one fallback
            _att(j[1], 1, a, "failed", latency_ms=1200, http_status=503, error_kind="unavailable"),
            _att(j[1], 2, b, "succeeded", latency_ms=2000, prompt_tokens=20, completion_tokens=8,
                 cost_usd=D("0.002")),
            # job 2: in flight
            _att(j[2], 1, b, "started"),
            # job 4: a cache hit is not a provider call
            _att(j[4], 1, a, "cache_hit", latency_ms=1, saved_usd=D("0.003")),
            # job 5: a superseded call still billed, then an unpriced success (retry)
            _att(j[5], 1, a, "superseded", latency_ms=700, prompt_tokens=3, completion_tokens=3,
                 cost_usd=D("0.0005")),
            _att(j[5], 2, a, "succeeded", latency_ms=100, prompt_tokens=4, completion_tokens=4),
        ])  # fmt: skip
        quota_limits_repo.set_limits(s, "acme", "day", D("1.00"), 1000, NOW)
        assert quota_repo.reserve(s, "acme", batch, None, 100, D("0.25"), NOW)
    return engine
