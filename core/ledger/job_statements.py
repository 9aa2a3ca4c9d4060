"""The SQL of the job and attempt state changes, built once as SQLAlchemy Core statements.

Owns: one statement per state change that `jobs_repo` makes (claim, start and close an attempt,
complete, fail, requeue, park, record a cache hit) and `FENCE`, the condition every write after
a claim carries. Builds statements only. Must not: execute anything (`jobs_repo` binds the
parameters and runs them in the caller's transaction), or be imported outside `core.ledger`.

Why built once (issue 10): these run on every job, and building the statement tree plus the ORM
execute path cost more CPU than the SQL; each statement is built once with bind parameters
(SQLAlchemy's compiled cache then hits too). Parameter names: `b_<column>` for job columns and
UPDATEs (UPDATE reserves bare column names), `a_<column>` for inserted attempt columns.

The fence: every claim increments `jobs.attempts`, and every later write to the job is
conditioned on `attempts == <the claim's number> AND state = 'running'`.
"""

from __future__ import annotations

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

from core.ledger.models import Attempt, Batch, Job
from schemas.job import AttemptOutcome, BatchState, JobState

_jobs = Job.__table__
_attempts = Attempt.__table__
_batches = Batch.__table__


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
FENCE: ColumnElement[bool] = and_(
    _jobs.c.id == _bind(_jobs, "id"),
    _jobs.c.attempts == _bind(_jobs, "attempts"),
    _jobs.c.state == JobState.RUNNING.value,
)

# queued and due, or running with an expired lease (parameters: b_due, b_now)
_CLAIMABLE = or_(
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
)
# -> running, attempts + 1, a fresh lease, held by worker b_worker_id (None = no heartbeat
# renews it). Parameters: b_lease_until, b_worker_id.
_CLAIM_VALUES: dict[str, Any] = {
    "state": JobState.RUNNING.value,
    "attempts": _jobs.c.attempts + 1,
    "lease_until": _bind(_jobs, "lease_until"),
    "worker_id": _bind(_jobs, "worker_id"),
    "not_before": None,
}
_CLAIM_RETURNING = (
    _jobs.c.id,
    _jobs.c.batch_id,
    _jobs.c.tenant,
    _jobs.c.model,
    _jobs.c.custom_id,
    _jobs.c.spec,
    _jobs.c.attempts,
    _jobs.c.routing_state,
    _jobs.c.cache_key,
    _jobs.c.deadline,
    # A subquery, not UPDATE ... FROM batches: SQLite (embedded mode) refuses
    # RETURNING columns of a FROM table; both databases accept this form.
    select(_batches.c.max_cost_usd)
    .where(_batches.c.id == _jobs.c.batch_id)
    .scalar_subquery()
    .label("max_cost_usd"),
)
# One job. Parameters: b_id, b_due, b_now, b_lease_until, b_worker_id.
CLAIM = (
    update(_jobs)
    .where(_jobs.c.id == _bind(_jobs, "id"), _CLAIMABLE)
    .values(**_CLAIM_VALUES)
    .returning(*_CLAIM_RETURNING)
)
# Every claimable job among b_ids (issue 21, a chunk), locked in id order and skipping rows
# another transaction holds (a duplicate message's claim, a sweep): two chunks sharing ids
# never wait on each other, let alone deadlock. A skipped queued job keeps its old
# `enqueued_at`, so the sweeper re-sends it if nobody claimed it.
# Parameters: b_ids (expanding), b_due, b_now, b_lease_until, b_worker_id.
CLAIM_MANY = (
    update(_jobs)
    .where(
        _jobs.c.id.in_(
            select(_jobs.c.id)
            .where(_jobs.c.id.in_(bindparam("b_ids", expanding=True)), _CLAIMABLE)
            .order_by(_jobs.c.id)
            .with_for_update(skip_locked=True)
        ),
        _CLAIMABLE,
    )
    .values(**_CLAIM_VALUES)
    .returning(*_CLAIM_RETURNING)
)


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
# _START_COLS. job_id, attempt_no and tenant come from the job row the fence matched:
# the tenant charged is the job's at the moment of the call (issue 19).
START_ATTEMPT = (
    insert(_attempts)
    .from_select(
        [
            "job_id",
            "attempt_no",
            "tenant",
            "outcome",
            "prompt_tokens",
            "completion_tokens",
            *_START_COLS,
        ],
        select(
            _jobs.c.id,
            _jobs.c.attempts,
            _jobs.c.tenant,
            bindparam("a_outcome", AttemptOutcome.STARTED.value, type_=_attempts.c.outcome.type),
            bindparam("a_zero_p", 0, type_=_attempts.c.prompt_tokens.type),
            bindparam("a_zero_c", 0, type_=_attempts.c.completion_tokens.type),
            *(bindparam(f"a_{c}", type_=_attempts.c[c].type) for c in _START_COLS),
        ).where(FENCE),
    )
    .returning(_attempts.c.attempt_no)
)


_CLOSE_VALUES = (
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "http_status",
    "error_kind",
    "error_message",
    "request_id",
    "usage_estimated",
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
# (the outcome the row must still have, the statement): tried in this order by close_attempt.
CLOSE_ATTEMPT = tuple((p.value, _CLOSE) for p in (AttemptOutcome.STARTED, AttemptOutcome.LOST))


_ANSWER_VALUES = (
    "result",
    "provider",
    "served_model",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "finished_at",
)
# The job succeeded through its own provider call; parameters: the fence, b_<column> for each of
# _ANSWER_VALUES and b_routing_state.
COMPLETE = (
    update(_jobs)
    .where(FENCE)
    .values(
        state=JobState.SUCCEEDED.value,
        error=None,
        lease_until=None,
        routing_state=_bind(_jobs, "routing_state"),
        **{c: _bind(_jobs, c) for c in _ANSWER_VALUES},
    )
)
# The job succeeded with another job's answer (a cache hit): as COMPLETE, but the job's routing
# state stays as the claim found it.
COMPLETE_FROM_CACHE = (
    update(_jobs)
    .where(FENCE)
    .values(
        state=JobState.SUCCEEDED.value,
        error=None,
        lease_until=None,
        **{c: _bind(_jobs, c) for c in _ANSWER_VALUES},
    )
)

_CACHE_HIT_COLS = (
    "job_id",
    "attempt_no",
    "tenant",
    "provider",
    "model",
    "deployment",
    "started_at",
    "latency_ms",
    "waited_ms",
    "saved_usd",
    "saved_tokens",
    "cached_from",
)
# The attempt row of a cache hit: nothing billed, nothing reserved, the original call's cost and
# tokens noted as saved. Parameters: a_<column> for each of _CACHE_HIT_COLS.
CACHE_HIT_ATTEMPT = insert(_attempts).values(
    outcome=AttemptOutcome.CACHE_HIT.value,
    prompt_tokens=0,
    completion_tokens=0,
    cost_usd=Decimal(0),
    reserved_usd=Decimal(0),
    reserved_tokens=0,
    **{c: bindparam(f"a_{c}", type_=_attempts.c[c].type) for c in _CACHE_HIT_COLS},
)


@cache
def fail_stmt(undo_claim: bool) -> Any:
    values: dict[str, Any] = {
        "state": JobState.FAILED.value,
        "error": _bind(_jobs, "error"),
        "lease_until": None,
        "finished_at": _bind(_jobs, "finished_at"),
        "routing_state": _bind(_jobs, "routing_state"),
    }
    if undo_claim:
        values["attempts"] = _jobs.c.attempts - 1
    return update(_jobs).where(FENCE).values(**values)


@cache
def requeue_stmt(undo_claim: bool, set_enqueued: bool) -> Any:
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
    return update(_jobs).where(FENCE).values(**values)


PARK = (
    update(_jobs)
    .where(FENCE)
    .values(
        state=_unless_cancelled(JobState.QUOTA_EXCEEDED),
        error=_bind(_jobs, "error"),
        not_before=_bind(_jobs, "not_before"),
        lease_until=None,
        attempts=_jobs.c.attempts - 1,
        routing_state=_bind(_jobs, "routing_state"),
    )
)
