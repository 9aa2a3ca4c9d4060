"""A cancel leaves running jobs to finish; a retry or a parking must not bring them back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers.jobs import seed
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ledger import batch_control_repo, jobs_repo
from core.ledger.models import Job
from schemas.job import ErrorRecord


@pytest.mark.parametrize("step", ["requeue", "park"])
def test_a_job_running_when_its_batch_is_cancelled_ends_cancelled(
    engine, clean_db, step: str
) -> None:  # type: ignore[no-untyped-def]
    batch_id, (job_id,) = seed(engine, 1, "m")
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        claim = jobs_repo.claim_job(s, job_id, now, lease_s=60)
    assert claim is not None
    with Session(engine) as s, s.begin():
        result = batch_control_repo.cancel_batch(s, batch_id, now)
    assert result is not None and result.running == 1
    with Session(engine) as s, s.begin():
        if step == "requeue":
            ok = jobs_repo.requeue_job(s, claim, now + timedelta(seconds=5), wait_ms=5000)
        else:
            error = ErrorRecord(type="quota_exceeded", message="no room")
            ok = jobs_repo.park_job(s, claim, error, now + timedelta(hours=1))
    assert ok
    with Session(engine) as s:
        assert s.scalar(select(Job.state).where(Job.id == job_id)) == "cancelled"
