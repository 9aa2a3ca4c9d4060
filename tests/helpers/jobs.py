"""Seed jobs straight into the ledger and publish their ids, for pipeline tests.

Test data only: production writes go through workers/ledger and the producer's submit. Once
the producer's `Client.submit` exists, end-to-end tests use that instead; these helpers keep the
pipeline's own tests independent of the producer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.ledger.models import Attempt, Batch, Job
from core.publish import enqueue_job_ids
from schemas.job import ChatMessage, JobSpec


def spec_for(prompt: str, **fields: Any) -> JobSpec:
    """A native job spec with one user message."""
    return JobSpec(
        custom_id=fields.pop("custom_id", "x"),
        messages=[ChatMessage(role="user", content=prompt)],
        **fields,
    )


def insert_jobs(
    engine: Engine,
    specs: Sequence[JobSpec],
    model: str,
    *,
    tenant: str = "default",
    max_cost_usd: Decimal | None = None,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """One batch holding `specs` (state queued) for `model`; returns (batch id, job ids)."""
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        batch = Batch(
            tenant=tenant,
            state="active",
            total_jobs=len(specs),
            default_model=model,
            max_cost_usd=max_cost_usd,
            nightly=False,
            use_cache=False,
            created_at=now,
        )
        s.add(batch)
        s.flush()
        jobs = [
            Job(
                batch_id=batch.id,
                line_no=i + 1,
                custom_id=spec.custom_id if len(specs) == 1 else f"{spec.custom_id}-{i}",
                tenant=tenant,
                model=spec.model or model,
                spec=spec.model_dump(mode="json", exclude={"custom_id", "model"}),
                state="queued",
                attempts=0,
                created_at=now,
                enqueued_at=now,
            )
            for i, spec in enumerate(specs)
        ]
        s.add_all(jobs)
        s.flush()
        return batch.id, [j.id for j in jobs]


def seed(
    engine: Engine, n: int, model: str, prompt: str = "Say something about job {i}.", **kw: Any
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """`n` one-message jobs for `model` (prompt may use {i})."""
    specs = [spec_for(prompt.format(i=i), custom_id=f"line-{i}") for i in range(n)]
    return insert_jobs(engine, specs, model, **kw)


def publish(broker_url: str, job_ids: Iterable[uuid.UUID]) -> None:
    """Send one `llmq.process_job` message per id (the producer's pipelined enqueue)."""
    enqueue_job_ids(broker_url, list(job_ids))


def states(engine: Engine, batch_id: uuid.UUID) -> dict[str, int]:
    """Job counts by state for a batch."""
    with Session(engine) as s:
        rows = s.execute(
            select(Job.state, func.count()).where(Job.batch_id == batch_id).group_by(Job.state)
        )
        return {state: count for state, count in rows}


def attempt_tokens(engine: Engine, batch_id: uuid.UUID) -> tuple[int, int]:
    """(prompt, completion) tokens over every attempt of the batch's jobs."""
    with Session(engine) as s:
        row = s.execute(
            select(
                func.coalesce(func.sum(Attempt.prompt_tokens), 0),
                func.coalesce(func.sum(Attempt.completion_tokens), 0),
            )
            .join(Job, Job.id == Attempt.job_id)
            .where(Job.batch_id == batch_id)
        ).one()
        return int(row[0]), int(row[1])


def wait_settled(
    engine: Engine,
    batch_id: uuid.UUID,
    timeout_s: float,
    done: Iterable[str] = ("succeeded", "failed", "cancelled", "quota_exceeded"),
    on_timeout: Callable[[], str] | None = None,
) -> dict[str, int]:
    """Poll until every job of the batch is in a `done` state; returns the counts by state.

    Raises AssertionError after `timeout_s` with the counts (and `on_timeout()`, e.g. logs).
    """
    finished = set(done)
    deadline = time.monotonic() + timeout_s
    while True:
        counts = states(engine, batch_id)
        if set(counts) <= finished:
            return counts
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            stuck = unfinished(engine, batch_id, finished)
            raise AssertionError(
                f"{extra}\nunfinished jobs: {stuck}\nbatch not settled in {timeout_s}s: {counts}"
            )
        time.sleep(0.2)


def unfinished(engine: Engine, batch_id: uuid.UUID, done: set[str], limit: int = 10) -> list[tuple]:
    """(id, state, attempts, not_before, lease_until) of up to `limit` jobs not yet done."""
    with Session(engine) as s:
        rows = s.execute(
            select(Job.id, Job.state, Job.attempts, Job.not_before, Job.lease_until)
            .where(Job.batch_id == batch_id, Job.state.not_in(done))
            .limit(limit)
        )
        return [tuple(r) for r in rows]
