"""The response cache's ledger half: find a fresh answer for a key, and record a hit.

Owns: `lookup` (ONE query: the newest job with that cache key that succeeded through a
provider call within the TTL, joined to the attempt that produced it) and `record_hit` (the
job succeeds with the entry's result, fenced like every finishing write in `jobs_repo`, and
one attempt row with outcome `cache_hit`: cost 0, 0 tokens billed, the original call's cost
and tokens noted as saved). Must not: open or commit transactions (the caller passes a session
inside `session_scope`), decide whether a job is cacheable (`core.cache_key` did, at submit),
or touch quota windows: a hit reserves and spends nothing.

What an entry is: a job row with a `cache_key` whose own answer came from a provider, i.e. its
winning attempt (attempt_no = jobs.attempts) has outcome `succeeded`. A job answered from the
cache is therefore never an entry itself, so an entry expires `ttl_s` after the call that made
it, however often it is reused. Failed jobs are never entries (only `succeeded` ones match).

Works on Postgres and on SQLite (the embedded mode): plain UPDATE and INSERT, no dialect SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.orm import Session

from core.ledger.jobs_repo import ClaimedJob
from core.ledger.models import Attempt, Job
from schemas.job import AttemptOutcome, JobState

_jobs = Job.__table__
_attempts = Attempt.__table__


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A reusable answer: the source job's result and the call that produced it."""

    job_id: uuid.UUID
    result: dict[str, Any]
    provider: str
    served_model: str | None  # jobs.served_model: the provider's model id that answered
    deployment: str
    attempt_model: str  # attempts.model of the producing call
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal | None  # None = the call's price was unknown
    finished_at: datetime


def lookup(
    session: Session, key: str, job_id: uuid.UUID, now: datetime, ttl_s: float
) -> CacheEntry | None:
    """The newest entry for `key` finished at or after `now - ttl_s`, other than `job_id`.

    One query, served by ix_jobs_cache_key (cache_key, finished_at) and the attempts primary
    key; None = a miss.
    """
    src, att = _jobs, _attempts
    stmt = (
        select(
            src.c.id,
            src.c.result,
            src.c.provider,
            src.c.served_model,
            src.c.finished_at,
            att.c.deployment,
            att.c.model,
            att.c.prompt_tokens,
            att.c.completion_tokens,
            att.c.cost_usd,
        )
        .join(
            att,
            and_(
                att.c.job_id == src.c.id,
                att.c.attempt_no == src.c.attempts,
                att.c.outcome == AttemptOutcome.SUCCEEDED.value,
            ),
        )
        .where(
            src.c.cache_key == key,
            src.c.finished_at >= now - timedelta(seconds=ttl_s),
            src.c.state == JobState.SUCCEEDED.value,
            src.c.result.is_not(None),
            src.c.id != job_id,
        )
        .order_by(src.c.finished_at.desc())
        .limit(1)
    )
    row = session.execute(stmt).one_or_none()
    if row is None:
        return None
    return CacheEntry(
        job_id=row.id,
        result=row.result,
        provider=row.provider or str(row.result.get("provider", "")),
        served_model=row.served_model,
        deployment=row.deployment,
        attempt_model=row.model,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=row.cost_usd,
        finished_at=row.finished_at,
    )


def record_hit(
    session: Session, claim: ClaimedJob, entry: CacheEntry, now: datetime, latency_ms: int
) -> bool:
    """Finish the claimed job with the entry's answer, if the claim still holds it.

    The job: succeeded, result = the entry's result, provider and served model as the entry's,
    0 tokens and cost 0 (nothing was billed for it). The attempt row (number = the claim's):
    outcome cache_hit, the entry's provider, model and deployment (so per-deployment reports
    count the hit where the answer came from), cost 0, 0 tokens, nothing reserved, saved_usd
    and saved_tokens = the original call's, cached_from = the entry's job. Returns False (and
    writes nothing) when the claim was superseded.
    """
    fenced = update(_jobs).where(
        _jobs.c.id == claim.id,
        _jobs.c.attempts == claim.attempt_no,
        _jobs.c.state == JobState.RUNNING.value,
    )
    won = session.execute(
        fenced.values(
            state=JobState.SUCCEEDED.value,
            result=entry.result,
            error=None,
            provider=entry.provider,
            served_model=entry.served_model,
            prompt_tokens=0,
            completion_tokens=0,
            cost_usd=Decimal(0),
            lease_until=None,
            finished_at=now,
        )
    )
    if won.rowcount != 1:
        return False
    # The UPDATE above holds the job's row lock until commit, so this insert cannot race a
    # newer claim of the same job.
    session.execute(
        insert(_attempts).values(
            job_id=claim.id,
            attempt_no=claim.attempt_no,
            provider=entry.provider,
            model=entry.attempt_model,
            deployment=entry.deployment,
            outcome=AttemptOutcome.CACHE_HIT.value,
            started_at=now,
            latency_ms=latency_ms,
            waited_ms=claim.waited_ms,
            prompt_tokens=0,
            completion_tokens=0,
            cost_usd=Decimal(0),
            reserved_usd=Decimal(0),
            reserved_tokens=0,
            saved_usd=entry.cost_usd,
            saved_tokens=entry.prompt_tokens + entry.completion_tokens,
            cached_from=entry.job_id,
        )
    )
    return True
