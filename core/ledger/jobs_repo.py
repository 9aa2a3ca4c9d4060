"""The job and attempt state changes a worker makes: claim, start, finish, requeue, park, fail.

Owns: every write to `jobs` and `attempts` on the worker side, each one statement, fenced by
the job's attempt counter. Must not: open or commit transactions (the caller passes a session
inside `session_scope` and groups statements into one transaction), decide anything (routing,
retry and quota decisions arrive as values), or touch quota windows (`quota_repo` does).

The fence: every claim increments `jobs.attempts`, and every later write to the job is
conditioned on `attempts == <the claim's number> AND state = 'running'`. A worker whose claim
was superseded (its lease expired and another worker claimed the job) therefore changes
nothing on the job; its attempt row still records what the provider billed.

Times are the caller's `now` (the worker's process clock, UTC); nothing here reads a clock.

Why Core statements built once and run on `session.connection()` (issue 10): these run on every
job, and building the statement tree plus the ORM execute path cost more CPU than the SQL; each
statement is built once with bind parameters (SQLAlchemy's compiled cache then hits too).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from core.ledger.models import Attempt, Batch, Job
from schemas.job import AttemptOutcome, BatchState, Completion, ErrorRecord, JobState

_jobs = Job.__table__
_attempts = Attempt.__table__
_batches = Batch.__table__

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
    cost_usd: Decimal | None = None
    http_status: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    request_id: str | None = None


def _bind(table: Table, column: str) -> Any:
    """A bind parameter `b_<column>` typed like the column (UPDATE reserves bare column names)."""
    return bindparam(f"b_{column}", type_=table.c[column].type)


def _unless_cancelled(state: JobState) -> Any:
    """`state`, or `cancelled` when the job's batch was cancelled while it was running: a
    cancel leaves running jobs to finish, so their retries and parking must not revive them."""
    batch_cancelled = exists().where(
        _batches.c.id == _jobs.c.batch_id, _batches.c.state == BatchState.CANCELLED.value
    )
    return case((batch_cancelled, JobState.CANCELLED.value), else_=state.value)


# Parameters: b_id, b_attempts (the claim's attempt number).
_FENCE: ColumnElement[bool] = and_(
    _jobs.c.id == _bind(_jobs, "id"),
    _jobs.c.attempts == _bind(_jobs, "attempts"),
    _jobs.c.state == JobState.RUNNING.value,
)


def _fence_params(job: ClaimedJob) -> dict[str, Any]:
    return {"b_id": job.id, "b_attempts": job.attempt_no}


_CLAIM = (
    update(_jobs)
    .where(
        _jobs.c.id == _bind(_jobs, "id"),
        or_(
            and_(
                _jobs.c.state == JobState.QUEUED.value,
                or_(
                    _jobs.c.not_before.is_(None),
                    _jobs.c.not_before <= bindparam("b_due", type_=_jobs.c.not_before.type),
                ),
            ),
            and_(
                _jobs.c.state == JobState.RUNNING.value,
                _jobs.c.lease_until < bindparam("b_now", type_=_jobs.c.lease_until.type),
            ),
        ),
    )
    .values(
        state=JobState.RUNNING.value,
        attempts=_jobs.c.attempts + 1,
        lease_until=_bind(_jobs, "lease_until"),
        not_before=None,
    )
    .returning(
        _jobs.c.id,
        _jobs.c.batch_id,
        _jobs.c.tenant,
        _jobs.c.model,
        _jobs.c.spec,
        _jobs.c.attempts,
        _jobs.c.routing_state,
        _jobs.c.cache_key,
        # A subquery, not UPDATE ... FROM batches: SQLite (embedded mode) refuses
        # RETURNING columns of a FROM table; both databases accept this form.
        select(_batches.c.max_cost_usd)
        .where(_batches.c.id == _jobs.c.batch_id)
        .scalar_subquery()
        .label("max_cost_usd"),
    )
)


def claim_job(
    session: Session, job_id: uuid.UUID, now: datetime, lease_s: float
) -> ClaimedJob | None:
    """Take the job if it is runnable: queued and due, or running with an expired lease.

    One conditional UPDATE ... RETURNING: state -> running, attempts + 1, a fresh lease.
    None means someone else holds it, it is finished, or it is not due (a duplicate or early
    message); the caller simply acknowledges the message.
    """
    params = {
        "b_id": job_id,
        "b_due": now + timedelta(seconds=CLAIM_EARLY_S),
        "b_now": now,
        "b_lease_until": now + timedelta(seconds=lease_s),
    }
    row = session.connection().execute(_CLAIM, params).one_or_none()
    if row is None:
        return None
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
    return session.connection().execute(_START_ATTEMPT, params).one_or_none() is not None


_START_COLS = (
    "provider",
    "model",
    "deployment",
    "started_at",
    "waited_ms",
    "reserved_tokens",
    "reserved_usd",
)
# INSERT ... SELECT over the fenced job row; parameters: the fence and a_<column> for each of
# _START_COLS. job_id and attempt_no come from the job row the fence matched.
_START_ATTEMPT = (
    insert(_attempts)
    .from_select(
        ["job_id", "attempt_no", "outcome", "prompt_tokens", "completion_tokens", *_START_COLS],
        select(
            _jobs.c.id,
            _jobs.c.attempts,
            bindparam("a_outcome", AttemptOutcome.STARTED.value, type_=_attempts.c.outcome.type),
            bindparam("a_zero_p", 0, type_=_attempts.c.prompt_tokens.type),
            bindparam("a_zero_c", 0, type_=_attempts.c.completion_tokens.type),
            *(bindparam(f"a_{c}", type_=_attempts.c[c].type) for c in _START_COLS),
        ).where(_FENCE),
    )
    .returning(_attempts.c.attempt_no)
)


def close_attempt(
    session: Session, job_id: uuid.UUID, attempt_no: int, close: AttemptClose
) -> str | None:
    """Record how the call ended on its attempt row; returns the outcome it replaced.

    "started": the normal case; the caller settles the reservation. "lost": the sweeper gave
    the attempt up (lease expired) and already released its reservation; the caller books only
    the actual spend. None: the row was already closed (nothing to do).
    """
    message = close.error_message[:ERROR_MESSAGE_MAX] if close.error_message else None
    params = {
        "b_job_id": job_id,
        "b_attempt_no": attempt_no,
        "b_outcome": close.outcome.value,
        "b_latency_ms": close.latency_ms,
        "b_prompt_tokens": close.prompt_tokens,
        "b_completion_tokens": close.completion_tokens,
        "b_cost_usd": close.cost_usd,
        "b_http_status": close.http_status,
        "b_error_kind": close.error_kind,
        "b_error_message": message,
        "b_request_id": close.request_id[:100] if close.request_id else None,
    }
    conn = session.connection()
    # Normally one statement: the row is still "started". Only an attempt the sweeper gave
    # up ("lost", rare) takes the second; which one matched decides how the caller settles.
    for previous, stmt in _CLOSE_ATTEMPT:
        if conn.execute(stmt, {**params, "b_previous": previous}).rowcount == 1:
            return previous
    return None


_CLOSE_VALUES = (
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "http_status",
    "error_kind",
    "error_message",
    "request_id",
)
_CLOSE = (
    update(_attempts)
    .where(
        _attempts.c.job_id == _bind(_attempts, "job_id"),
        _attempts.c.attempt_no == _bind(_attempts, "attempt_no"),
        _attempts.c.outcome == bindparam("b_previous", type_=_attempts.c.outcome.type),
    )
    .values(
        outcome=_bind(_attempts, "outcome"),
        **{c: _bind(_attempts, c) for c in _CLOSE_VALUES},
    )
)
_CLOSE_ATTEMPT = tuple((p.value, _CLOSE) for p in (AttemptOutcome.STARTED, AttemptOutcome.LOST))


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
        "b_routing_state": _routing_state(job, wait_ms=0),
    }
    return session.connection().execute(_COMPLETE, params).rowcount == 1


_COMPLETE_VALUES = (
    "result",
    "provider",
    "served_model",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "finished_at",
    "routing_state",
)
_COMPLETE = (
    update(_jobs)
    .where(_FENCE)
    .values(
        state=JobState.SUCCEEDED.value,
        error=None,
        lease_until=None,
        **{c: _bind(_jobs, c) for c in _COMPLETE_VALUES},
    )
)


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
        "b_routing_state": _routing_state(job, wait_ms=0, excluded=excluded),
    }
    return session.connection().execute(_fail_stmt(undo_claim), params).rowcount == 1


@cache
def _fail_stmt(undo_claim: bool) -> Any:
    values: dict[str, Any] = {
        "state": JobState.FAILED.value,
        "error": _bind(_jobs, "error"),
        "lease_until": None,
        "finished_at": _bind(_jobs, "finished_at"),
        "routing_state": _bind(_jobs, "routing_state"),
    }
    if undo_claim:
        values["attempts"] = _jobs.c.attempts - 1
    return update(_jobs).where(_FENCE).values(**values)


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
        "b_routing_state": _routing_state(job, wait_ms=wait_ms, excluded=excluded),
        "b_enqueued_at": message_due,
    }
    stmt = _requeue_stmt(undo_claim, message_due is not None)
    return session.connection().execute(stmt, params).rowcount == 1


@cache
def _requeue_stmt(undo_claim: bool, set_enqueued: bool) -> Any:
    values: dict[str, Any] = {
        "state": _unless_cancelled(JobState.QUEUED),
        "not_before": _bind(_jobs, "not_before"),
        "lease_until": None,
        "routing_state": _bind(_jobs, "routing_state"),
    }
    if undo_claim:
        values["attempts"] = _jobs.c.attempts - 1
    if set_enqueued:
        values["enqueued_at"] = _bind(_jobs, "enqueued_at")
    return update(_jobs).where(_FENCE).values(**values)


def park_job(session: Session, job: ClaimedJob, error: ErrorRecord, retry_at: datetime) -> bool:
    """Park the job as quota_exceeded until `retry_at` (kept, resumable), if still ours.

    No provider call was made, so the claim's attempt is given back.
    """
    params = {
        **_fence_params(job),
        "b_error": error.model_dump(mode="json"),
        "b_not_before": retry_at,
        "b_routing_state": _routing_state(job, wait_ms=0),
    }
    return session.connection().execute(_PARK, params).rowcount == 1


_PARK = (
    update(_jobs)
    .where(_FENCE)
    .values(
        state=_unless_cancelled(JobState.QUOTA_EXCEEDED),
        error=_bind(_jobs, "error"),
        not_before=_bind(_jobs, "not_before"),
        lease_until=None,
        attempts=_jobs.c.attempts - 1,
        routing_state=_bind(_jobs, "routing_state"),
    )
)


def _routing_state(
    job: ClaimedJob, *, wait_ms: int, excluded: frozenset[str] | None = None
) -> dict[str, Any]:
    chosen = job.excluded if excluded is None else excluded
    state: dict[str, Any] = {"excluded": sorted(chosen)} if chosen else {}
    if wait_ms:
        state["wait_ms"] = wait_ms
    if "attempt_base" in job.routing_state:  # kept for the life of the job (nightly re-runs)
        state["attempt_base"] = job.routing_state["attempt_base"]
    return state
