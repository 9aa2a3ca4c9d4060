"""The job and attempt state changes a worker makes: claim, start, finish, requeue, park, fail,
and finish from the response cache.

Owns: every write to `jobs` and `attempts` on the worker side (the cache's hit included:
`cache_repo` finds the answer, this module writes it), each one statement, fenced by the job's
attempt counter. The statements themselves are built once in `job_statements`; this module
binds their parameters. Must not: open or commit transactions (the caller passes a session
inside `session_scope` and groups statements into one transaction), decide anything (routing,
retry and quota decisions arrive as values), or touch quota windows (`quota_repo` does).

The fence: every claim increments `jobs.attempts`, and every later write to the job is
conditioned on `attempts == <the claim's number> AND state = 'running'`. A worker whose claim
was superseded (its lease expired and another worker claimed the job) therefore changes
nothing on the job; its attempt row still records what the provider billed.

Times are the caller's `now` (the worker's process clock, UTC); nothing here reads a clock.
Statements run on `session.connection()`: the ORM execute path costs more CPU than the SQL
(issue 10).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from core.ledger import job_statements
from schemas.job import AttemptOutcome, Completion, ErrorRecord

# A countdown message may reach a worker whose clock runs slightly ahead of the one that set
# `not_before`; admitting it this early avoids dropping the message and waiting for the
# sweeper. Provider back-off is enforced by the health store, not by this timestamp.
CLAIM_EARLY_S = 1.0

ERROR_MESSAGE_MAX = 300  # attempts.error_message is VARCHAR(300)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker now holds, as the claim returned it."""

    id: uuid.UUID
    batch_id: uuid.UUID
    tenant: str
    model: str
    spec: dict[str, Any]
    attempt_no: int  # the fence: this claim's value of jobs.attempts
    routing_state: dict[str, Any]
    batch_max_cost: Decimal | None
    cache_key: str | None = None  # set at submit when the job may use the cache (issue 11)
    custom_id: str = ""  # the input line's id (rebuilding the JobSpec needs it)
    deadline: datetime | None = None  # issue 18: may wait for a batch lane until then

    @property
    def excluded(self) -> frozenset[str]:
        """Deployments this job must not use again (auth failures, missing models, ...)."""
        return frozenset(self.routing_state.get("excluded", ()))

    @property
    def waited_ms(self) -> int:
        """Back-off this job sat through since its last provider call, milliseconds."""
        return int(self.routing_state.get("wait_ms", 0))

    @property
    def budget_attempt_no(self) -> int:
        """This claim's number within the job's current attempt budget: a nightly re-run of a
        failed job (workers/nightly.py) sets `attempt_base` to the attempts used before it."""
        return self.attempt_no - int(self.routing_state.get("attempt_base", 0))


@dataclass(frozen=True, slots=True)
class AttemptStart:
    """The attempt row written, with its reservation, before the provider call."""

    provider: str
    model: str  # the provider's model id
    deployment: str
    started_at: datetime
    reserved_tokens: int
    reserved_usd: Decimal
    waited_ms: int


@dataclass(frozen=True, slots=True)
class AttemptClose:
    """How a provider call ended, for its attempt row."""

    outcome: AttemptOutcome
    latency_ms: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # the classes inside them (issue 19); stored NULL when 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal | None = None
    http_status: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    usage_estimated: bool = False  # the tokens are llmq's estimate (the provider gave none)


def _fence_params(job: ClaimedJob) -> dict[str, Any]:
    return {"b_id": job.id, "b_attempts": job.attempt_no}


def claim_job(
    session: Session,
    job_id: uuid.UUID,
    now: datetime,
    lease_s: float,
    worker_id: uuid.UUID | None = None,
) -> ClaimedJob | None:
    """Take the job if it is runnable: queued and due, or running with an expired lease.

    One conditional UPDATE ... RETURNING: state -> running, attempts + 1, a fresh lease,
    `worker_id` recorded as its holder (whose heartbeat renews the lease; None = nobody
    renews it, so `lease_s` must outlast the call). None means someone else holds it, it is
    finished, or it is not due (a duplicate or early message); the caller simply
    acknowledges the message.
    """
    params = {
        "b_id": job_id,
        "b_due": now + timedelta(seconds=CLAIM_EARLY_S),
        "b_now": now,
        "b_lease_until": now + timedelta(seconds=lease_s),
        "b_worker_id": worker_id,
    }
    row = session.connection().execute(job_statements.CLAIM, params).one_or_none()
    return None if row is None else _claimed(row)


def claim_jobs(
    session: Session,
    job_ids: Sequence[uuid.UUID],
    now: datetime,
    lease_s: float,
    worker_id: uuid.UUID | None = None,
) -> list[ClaimedJob]:
    """`claim_job` for many ids in ONE statement (issue 21, a chunk): the claimable ones,
    in id order; a job another transaction holds locked right now is skipped, not waited for
    (see `job_statements.CLAIM_MANY`)."""
    if not job_ids:
        return []
    params = {
        "b_ids": list(job_ids),
        "b_due": now + timedelta(seconds=CLAIM_EARLY_S),
        "b_now": now,
        "b_lease_until": now + timedelta(seconds=lease_s),
        "b_worker_id": worker_id,
    }
    rows = session.connection().execute(job_statements.CLAIM_MANY, params).all()
    return sorted((_claimed(r) for r in rows), key=lambda c: c.id)


def _claimed(row: Any) -> ClaimedJob:
    return ClaimedJob(
        id=row.id,
        batch_id=row.batch_id,
        tenant=row.tenant,
        model=row.model,
        spec=row.spec or {},
        attempt_no=row.attempts,
        routing_state=dict(row.routing_state or {}),
        batch_max_cost=row.max_cost_usd,
        cache_key=row.cache_key,
        custom_id=row.custom_id,
        deadline=row.deadline,
    )


def start_attempt(session: Session, job: ClaimedJob, start: AttemptStart) -> bool:
    """Insert the attempt row (outcome 'started') if the job is still ours.

    INSERT ... SELECT over the fenced job row, so a superseded claim inserts nothing and the
    caller rolls back its reservation. Returns whether the row was written.
    """
    params = {
        **_fence_params(job),
        "a_provider": start.provider,
        "a_model": start.model,
        "a_deployment": start.deployment,
        "a_started_at": start.started_at,
        "a_waited_ms": start.waited_ms,
        "a_reserved_tokens": start.reserved_tokens,
        "a_reserved_usd": start.reserved_usd,
    }
    return (
        session.connection().execute(job_statements.START_ATTEMPT, params).one_or_none() is not None
    )


def close_attempt(
    session: Session, job_id: uuid.UUID, attempt_no: int, close: AttemptClose
) -> str | None:
    """Record how the call ended on its attempt row; returns the outcome it replaced.

    "started": the normal case; the caller settles the reservation. "lost": the sweeper gave
    the attempt up (lease expired) and booked its reservation as spent (`spent_unknown`, issue
    19); the caller replaces that booking by the actual spend. None: the row was already closed (nothing to do).
    """
    message = close.error_message[:ERROR_MESSAGE_MAX] if close.error_message else None
    params = {
        "b_job_id": job_id,
        "b_attempt_no": attempt_no,
        "b_outcome": close.outcome.value,
        "b_latency_ms": close.latency_ms,
        "b_prompt_tokens": close.prompt_tokens,
        "b_completion_tokens": close.completion_tokens,
        # NULL when zero: most calls have none, and a NULL costs no bytes in the row
        "b_cached_tokens": close.cached_tokens or None,
        "b_cache_write_tokens": close.cache_write_tokens or None,
        "b_reasoning_tokens": close.reasoning_tokens or None,
        "b_cost_usd": close.cost_usd,
        "b_http_status": close.http_status,
        "b_error_kind": close.error_kind,
        "b_error_message": message,
        "b_request_id": close.request_id[:100] if close.request_id else None,
        "b_usage_estimated": close.usage_estimated,
    }
    conn = session.connection()
    # Normally one statement: the row is still "started". Only an attempt the sweeper gave
    # up ("lost", rare) takes the second; which one matched decides how the caller settles.
    for previous, stmt in job_statements.CLOSE_ATTEMPT:
        if conn.execute(stmt, {**params, "b_previous": previous}).rowcount == 1:
            return previous
    return None


def complete_job(session: Session, job: ClaimedJob, completion: Completion, now: datetime) -> bool:
    """Write the result, usage and cost onto the job and mark it succeeded, if still ours."""
    usage = completion.usage
    params = {
        **_fence_params(job),
        "b_result": completion.model_dump(mode="json"),
        "b_provider": completion.provider,
        "b_served_model": completion.model_id,
        "b_prompt_tokens": usage.prompt_tokens,
        "b_completion_tokens": usage.completion_tokens,
        # NOT NULL column: an unknown price books 0 here; the result keeps cost_usd None.
        "b_cost_usd": completion.cost_usd if completion.cost_usd is not None else Decimal(0),
        "b_finished_at": now,
        "b_routing_state": routing_state(job, wait_ms=0),
    }
    return session.connection().execute(job_statements.COMPLETE, params).rowcount == 1


@dataclass(frozen=True, slots=True)
class CacheHit:
    """An answer reused from another job, as the job row and its `cache_hit` attempt get it."""

    source_job_id: uuid.UUID  # attempts.cached_from
    result: dict[str, Any]  # the source job's result, stored as this job's
    provider: str
    served_model: str | None  # the provider's model id that answered
    deployment: str  # the source call's, so per-deployment reports count the hit there
    model: str  # attempts.model of the source call
    saved_usd: Decimal | None  # the source call's cost; None = its price was unknown
    saved_tokens: int  # the source call's prompt + completion tokens
    latency_ms: int  # lookup to answer


def complete_job_from_cache(
    session: Session, job: ClaimedJob, hit: CacheHit, now: datetime
) -> bool:
    """Finish the claimed job with a reused answer, if the claim still holds it.

    The job: succeeded, result, provider and served model as the hit's, 0 tokens and cost 0
    (nothing was billed for it). The attempt row (number = the claim's): outcome cache_hit,
    cost 0, 0 tokens, nothing reserved, the source call's cost and tokens as saved. Returns
    False (and writes nothing) when the claim was superseded.
    """
    params = {
        **_fence_params(job),
        "b_result": hit.result,
        "b_provider": hit.provider,
        "b_served_model": hit.served_model,
        "b_prompt_tokens": 0,
        "b_completion_tokens": 0,
        "b_cost_usd": Decimal(0),
        "b_finished_at": now,
    }
    conn = session.connection()
    if conn.execute(job_statements.COMPLETE_FROM_CACHE, params).rowcount != 1:
        return False
    # The UPDATE above holds the job's row lock until commit, so this insert cannot race a
    # newer claim of the same job.
    attempt = {
        "job_id": job.id,
        "attempt_no": job.attempt_no,
        "tenant": job.tenant,
        "provider": hit.provider,
        "model": hit.model,
        "deployment": hit.deployment,
        "started_at": now,
        "latency_ms": hit.latency_ms,
        "waited_ms": job.waited_ms,
        "saved_usd": hit.saved_usd,
        "saved_tokens": hit.saved_tokens,
        "cached_from": hit.source_job_id,
    }
    conn.execute(job_statements.CACHE_HIT_ATTEMPT, {f"a_{k}": v for k, v in attempt.items()})
    return True


def fail_job(
    session: Session,
    job: ClaimedJob,
    error: ErrorRecord,
    now: datetime,
    *,
    undo_claim: bool = False,
    excluded: frozenset[str] | None = None,
) -> bool:
    """Mark the job failed with its error record, if still ours.

    `undo_claim` gives back the attempt this claim took when no provider call was made, so
    `attempts` keeps counting calls.
    """
    params = {
        **_fence_params(job),
        "b_error": error.model_dump(mode="json"),
        "b_finished_at": now,
        "b_routing_state": routing_state(job, wait_ms=0, excluded=excluded),
    }
    return session.connection().execute(job_statements.fail_stmt(undo_claim), params).rowcount == 1


def requeue_job(
    session: Session,
    job: ClaimedJob,
    not_before: datetime | None,
    *,
    wait_ms: int,
    excluded: frozenset[str] | None = None,
    undo_claim: bool = False,
    message_due: datetime | None = None,
) -> bool:
    """Put the job back to queued, due at `not_before` (None = now), if still ours.

    `wait_ms` is the back-off accumulated before the next call (shown on its attempt row);
    `message_due` is when the message the caller is about to send becomes deliverable, so the
    sweeper does not re-send a job whose countdown message is still pending (None = leave
    `enqueued_at` alone: no message is sent and the sweeper must send one).
    """
    params = {
        **_fence_params(job),
        "b_not_before": not_before,
        "b_routing_state": routing_state(job, wait_ms=wait_ms, excluded=excluded),
        "b_enqueued_at": message_due,
    }
    stmt = job_statements.requeue_stmt(undo_claim, message_due is not None)
    return session.connection().execute(stmt, params).rowcount == 1


def park_job(session: Session, job: ClaimedJob, error: ErrorRecord, retry_at: datetime) -> bool:
    """Park the job as quota_exceeded until `retry_at` (kept, resumable), if still ours.

    No provider call was made, so the claim's attempt is given back.
    """
    params = {
        **_fence_params(job),
        "b_error": error.model_dump(mode="json"),
        "b_not_before": retry_at,
        "b_routing_state": routing_state(job, wait_ms=0),
    }
    return session.connection().execute(job_statements.PARK, params).rowcount == 1


def routing_state(
    job: ClaimedJob, *, wait_ms: int, excluded: frozenset[str] | None = None
) -> dict[str, Any]:
    chosen = job.excluded if excluded is None else excluded
    state: dict[str, Any] = {"excluded": sorted(chosen)} if chosen else {}
    if wait_ms:
        state["wait_ms"] = wait_ms
    if "attempt_base" in job.routing_state:  # kept for the life of the job (nightly re-runs)
        state["attempt_base"] = job.routing_state["attempt_base"]
    return state
