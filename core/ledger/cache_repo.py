"""The response cache's ledger half: find a fresh answer for a key, and record a hit.

Owns: `lookup` (ONE query: the newest job with that cache key that succeeded through a
provider call within the TTL, joined to the attempt that produced it) and `record_hit`, which
hands the entry to `jobs_repo.complete_job_from_cache` (the job succeeds with the entry's
result under the job fence, and one attempt row with outcome `cache_hit`: cost 0, 0 tokens
billed, the original call's cost and tokens noted as saved). Must not: write `jobs` or
`attempts` itself (`jobs_repo` owns those writes), open or commit transactions (the caller
passes a session inside `session_scope`), decide whether a job is cacheable (`core.cache_key`
did, at submit), or touch quota windows: a hit reserves and spends nothing.

What an entry is: a job row with a `cache_key` whose own answer came from a provider, i.e. its
winning attempt (attempt_no = jobs.attempts) has outcome `succeeded`. A job answered from the
cache is therefore never an entry itself, so an entry expires `ttl_s` after the call that made
it, however often it is reused. Failed jobs are never entries (only `succeeded` ones match).

Works on Postgres and on SQLite (the embedded mode): a plain SELECT, no dialect SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from core.ledger import jobs_repo, vectors_repo
from core.ledger.jobs_repo import CacheHit, ClaimedJob
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

    Written by `jobs_repo.complete_job_from_cache` under the same fence as every finishing
    write: the job succeeds with the entry's result, provider and served model, 0 tokens and
    cost 0; its attempt row (outcome cache_hit) names the entry's provider, model and deployment
    (so per-deployment reports count the hit where the answer came from), with the original
    call's cost and tokens as saved and cached_from = the entry's job; an embedding entry's
    vectors are copied to the job. Returns False (and writes nothing) when the claim was
    superseded.
    """
    hit = CacheHit(
        source_job_id=entry.job_id,
        result=entry.result,
        provider=entry.provider,
        served_model=entry.served_model,
        deployment=entry.deployment,
        model=entry.attempt_model,
        saved_usd=entry.cost_usd,
        saved_tokens=entry.prompt_tokens + entry.completion_tokens,
        latency_ms=latency_ms,
    )
    won = jobs_repo.complete_job_from_cache(session, claim, hit, now)
    if won and entry.result.get("embedding") is not None:  # issue 17: the vectors too
        vectors_repo.copy(session, entry.job_id, claim.id)
    return won
