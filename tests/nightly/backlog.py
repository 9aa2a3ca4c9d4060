"""Prepare a backlog for the nightly tests: inbox files, and jobs already in the states a
nightly run picks up (test data written straight into the ledger), plus ledger read-backs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpers.jobs import seed
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from core.ledger.models import Batch, Job, NightlyRun, NightlyRunJob


def write_jsonl(path: Path, n: int, prefix: str = "line") -> Path:
    lines = [
        {"custom_id": f"{prefix}-{i}", "prompt": f"{prefix}: say {i} things."} for i in range(n)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def write_bad_jsonl(path: Path) -> Path:
    """Line 2 is not JSON and line 3 names an unknown model; lines 1 and 4 are fine."""
    path.write_text(
        json.dumps({"custom_id": "a", "prompt": "fine"})
        + "\n{not json\n"
        + json.dumps({"custom_id": "c", "prompt": "x", "model": "no-such-model"})
        + "\n"
        + json.dumps({"custom_id": "d", "prompt": "fine too"})
        + "\n"
    )
    return path


def seed_in_state(
    engine: Engine, n: int, state: str, *, tenant: str = "team-a", **values: Any
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """`n` jobs of model "m" in a new batch, then put into `state` with `values` (e.g. error,
    not_before, attempts)."""
    batch_id, ids = seed(engine, n, "m", tenant=tenant)
    with Session(engine) as s, s.begin():
        s.execute(update(Job).where(Job.id.in_(ids)).values(state=state, **values))
    return batch_id, ids


def parked(engine: Engine, n: int, due: bool) -> list[uuid.UUID]:
    """quota_exceeded jobs whose window has reset (due) or resets tomorrow."""
    at = datetime.now(UTC) + (timedelta(minutes=-5) if due else timedelta(days=1))
    error = {"type": "quota_exceeded", "message": "tenant:team-a day USD limit"}
    return seed_in_state(engine, n, "quota_exceeded", not_before=at, error=error)[1]


def failed(engine: Engine, n: int, kind: str, attempts: int = 6) -> list[uuid.UUID]:
    """Failed jobs with error kind `kind` that used `attempts` attempts (6 = the default budget)."""
    error = {"type": kind, "message": f"simulated {kind}", "status": 429}
    now = datetime.now(UTC)
    return seed_in_state(engine, n, "failed", error=error, attempts=attempts, finished_at=now)[1]


def job_states(engine: Engine, ids: list[uuid.UUID]) -> dict[str, int]:
    with Session(engine) as s:
        rows = s.execute(select(Job.state, func.count()).where(Job.id.in_(ids)).group_by(Job.state))
        return {state: n for state, n in rows}


def tenants(engine: Engine, ids: list[uuid.UUID]) -> set[str]:
    with Session(engine) as s:
        return set(s.scalars(select(Job.tenant).where(Job.id.in_(ids))))


def count(engine: Engine, table: type) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def batch_ids(engine: Engine) -> set[uuid.UUID]:
    with Session(engine) as s:
        return set(s.scalars(select(Batch.id)))


def linked(engine: Engine, run_date: Any) -> dict[uuid.UUID, str]:
    """job id -> source, for the run of `run_date`."""
    with Session(engine) as s:
        rows = s.execute(
            select(NightlyRunJob.job_id, NightlyRunJob.source)
            .join(NightlyRun, NightlyRun.id == NightlyRunJob.run_id)
            .where(NightlyRun.run_date == run_date)
        )
        return {j: src for j, src in rows}
