"""Ledger rows for the sweeper tests: batches, jobs and attempts in chosen states.

The rows are written with plain Core inserts (test set-up), the quota reservations through
`quota_repo.reserve`, the real function a worker uses.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from core.ledger import quota_repo
from core.ledger.db import session_scope
from core.ledger.models import Attempt, Batch, BudgetWindow, Job

NOW = datetime(2026, 5, 14, 12, 0, tzinfo=UTC)


class Ledger:
    """Writes test rows; every method is its own committed transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def batch(self, total_jobs: int = 0, tenant: str = "t1", **values: Any) -> uuid.UUID:
        batch_id = uuid.uuid4()
        row = {
            "id": batch_id,
            "tenant": tenant,
            "state": "active",
            "total_jobs": total_jobs,
            "created_at": NOW - timedelta(hours=1),
            **values,
        }
        with session_scope(self.sessions) as s:
            s.execute(insert(Batch.__table__).values(**row))
        return batch_id

    def job(self, batch_id: uuid.UUID, state: str = "queued", **values: Any) -> uuid.UUID:
        job_id = uuid.uuid4()
        row = {
            "id": job_id,
            "batch_id": batch_id,
            "line_no": values.pop("line_no", 0),
            "custom_id": str(job_id),
            "tenant": values.pop("tenant", "t1"),
            "model": "m",
            "spec": {"messages": [{"role": "user", "content": "hi"}]},
            "state": state,
            "attempts": values.pop("attempts", 0),
            "created_at": values.pop("created_at", NOW - timedelta(hours=1)),
            **values,
        }
        with session_scope(self.sessions) as s:
            s.execute(insert(Job.__table__).values(**row))
        return job_id

    def started_attempt(
        self,
        job_id: uuid.UUID,
        attempt_no: int,
        started_at: datetime,
        *,
        batch_id: uuid.UUID,
        tenant: str = "t1",
        tokens: int = 100,
        usd: Decimal = Decimal("0.01"),
    ) -> None:
        """An attempt row still `started`, holding a real quota reservation."""
        with session_scope(self.sessions) as s:
            assert quota_repo.reserve(s, tenant, batch_id, None, tokens, usd, started_at)
            s.execute(
                insert(Attempt.__table__).values(
                    job_id=job_id,
                    attempt_no=attempt_no,
                    provider="openai",
                    model="m",
                    deployment="openai/m",
                    outcome="started",
                    started_at=started_at,
                    tenant=tenant,
                    reserved_tokens=tokens,
                    reserved_usd=usd,
                )
            )

    def reserved(self) -> tuple[int, Decimal]:
        """(reserved tokens, reserved USD) summed over every budget window."""
        with session_scope(self.sessions) as s:
            row = s.execute(
                select(
                    func.coalesce(func.sum(BudgetWindow.reserved_tokens), 0),
                    func.coalesce(func.sum(BudgetWindow.reserved_usd), 0),
                )
            ).one()
        return int(row[0]), Decimal(row[1])

    def spent(self) -> tuple[int, Decimal]:
        """(spent tokens, spent USD) summed over every budget window."""
        with session_scope(self.sessions) as s:
            row = s.execute(
                select(
                    func.coalesce(func.sum(BudgetWindow.spent_tokens), 0),
                    func.coalesce(func.sum(BudgetWindow.spent_usd), 0),
                )
            ).one()
        return int(row[0]), Decimal(row[1])

    def job_row(self, job_id: uuid.UUID) -> Any:
        with session_scope(self.sessions) as s:
            return s.execute(select(Job.__table__).where(Job.id == job_id)).one()

    def attempt_row(self, job_id: uuid.UUID, attempt_no: int) -> Any:
        with session_scope(self.sessions) as s:
            return s.execute(
                select(Attempt.__table__).where(
                    Attempt.job_id == job_id, Attempt.attempt_no == attempt_no
                )
            ).one()

    def batch_row(self, batch_id: uuid.UUID) -> Any:
        with session_scope(self.sessions) as s:
            return s.execute(select(Batch.__table__).where(Batch.id == batch_id)).one()
