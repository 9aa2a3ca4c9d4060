"""The writes of a chunk of jobs (issue 21), each ONE statement for the whole chunk.

Owns: `start_attempts` (the attempt rows of many admitted jobs), `complete_jobs` (many
answered jobs' results) and `close_attempts` (many attempt rows), each with the same fence
per job as its one-job form in `jobs_repo`, so a row whose claim was superseded is left
alone and reported as such. Works inside the caller's transaction and never commits.
Must not: decide anything (the worker's chunk runner does), or settle quota (`quota_repo`).

Why: a job's three writes cost more CPU in SQLAlchemy's per-statement path than in
Postgres. On Postgres each function is one statement over `unnest` of per-column arrays
(one round trip, rows joined in the server); on SQLite (the embedded mode) it loops the
one-job statements in the same transaction, which is what SQLite would do anyway.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.ledger import jobs_repo
from core.ledger.budget_window_rows import is_postgres
from core.ledger.jobs_repo import (
    ERROR_MESSAGE_MAX,
    AttemptClose,
    AttemptStart,
    ClaimedJob,
    routing_state,
)
from schemas.job import AttemptOutcome, Completion

_START = text("""
INSERT INTO attempts (job_id, attempt_no, tenant, outcome, prompt_tokens, completion_tokens,
                      provider, model, deployment, started_at, waited_ms, reserved_tokens,
                      reserved_usd)
SELECT j.id, j.attempts, j.tenant, 'started', 0, 0, v.provider, v.model, v.deployment,
       v.started_at, v.waited_ms, v.reserved_tokens, v.reserved_usd
FROM unnest(CAST(:ids AS uuid[]), CAST(:att AS integer[]), CAST(:provider AS text[]),
            CAST(:model AS text[]), CAST(:deployment AS text[]),
            CAST(:started_at AS timestamptz[]), CAST(:waited_ms AS integer[]),
            CAST(:reserved_tokens AS integer[]), CAST(:reserved_usd AS numeric[]))
     AS v(id, att, provider, model, deployment, started_at, waited_ms, reserved_tokens,
          reserved_usd)
JOIN jobs j ON j.id = v.id AND j.attempts = v.att AND j.state = 'running'
RETURNING job_id
""")

_COMPLETE = text("""
UPDATE jobs j
SET state = 'succeeded', error = NULL, lease_until = NULL,
    routing_state = CAST(v.routing_state AS json), result = CAST(v.result AS json),
    provider = v.provider, served_model = v.served_model, prompt_tokens = v.prompt_tokens,
    completion_tokens = v.completion_tokens, cost_usd = v.cost_usd, finished_at = :finished_at
FROM unnest(CAST(:ids AS uuid[]), CAST(:att AS integer[]), CAST(:routing_state AS text[]),
            CAST(:result AS text[]), CAST(:provider AS text[]), CAST(:served_model AS text[]),
            CAST(:prompt_tokens AS integer[]), CAST(:completion_tokens AS integer[]),
            CAST(:cost_usd AS numeric[]))
     AS v(id, att, routing_state, result, provider, served_model, prompt_tokens,
          completion_tokens, cost_usd)
WHERE j.id = v.id AND j.attempts = v.att AND j.state = 'running'
RETURNING j.id
""")

_CLOSE = text("""
UPDATE attempts a
SET outcome = v.outcome, latency_ms = v.latency_ms, prompt_tokens = v.prompt_tokens,
    completion_tokens = v.completion_tokens, cached_tokens = v.cached_tokens,
    cache_write_tokens = v.cache_write_tokens, reasoning_tokens = v.reasoning_tokens,
    cost_usd = v.cost_usd, http_status = v.http_status, error_kind = v.error_kind,
    error_message = v.error_message, request_id = v.request_id,
    usage_estimated = v.usage_estimated
FROM unnest(CAST(:ids AS uuid[]), CAST(:att AS integer[]), CAST(:outcome AS text[]),
            CAST(:latency_ms AS integer[]), CAST(:prompt_tokens AS integer[]),
            CAST(:completion_tokens AS integer[]), CAST(:cached_tokens AS integer[]),
            CAST(:cache_write_tokens AS integer[]), CAST(:reasoning_tokens AS integer[]),
            CAST(:cost_usd AS numeric[]), CAST(:http_status AS integer[]),
            CAST(:error_kind AS text[]), CAST(:error_message AS text[]),
            CAST(:request_id AS text[]), CAST(:usage_estimated AS boolean[]))
     AS v(id, att, outcome, latency_ms, prompt_tokens, completion_tokens, cached_tokens,
          cache_write_tokens, reasoning_tokens, cost_usd, http_status, error_kind,
          error_message, request_id, usage_estimated)
WHERE a.job_id = v.id AND a.attempt_no = v.att AND a.outcome = 'started'
RETURNING a.job_id
""")


def start_attempts(
    session: Session, starts: Sequence[tuple[ClaimedJob, AttemptStart]]
) -> set[uuid.UUID]:
    """Insert the attempt rows (outcome 'started') of the jobs still ours; returns their
    ids. A job missing from the answer lost its claim: no row was written for it."""
    if not starts:
        return set()
    if not is_postgres(session):
        return {c.id for c, st in starts if jobs_repo.start_attempt(session, c, st)}
    params = {
        "ids": [c.id for c, _ in starts],
        "att": [c.attempt_no for c, _ in starts],
        "provider": [st.provider for _, st in starts],
        "model": [st.model for _, st in starts],
        "deployment": [st.deployment for _, st in starts],
        "started_at": [st.started_at for _, st in starts],
        "waited_ms": [st.waited_ms for _, st in starts],
        "reserved_tokens": [st.reserved_tokens for _, st in starts],
        "reserved_usd": [st.reserved_usd for _, st in starts],
    }
    return set(session.connection().execute(_START, params).scalars())


def complete_jobs(
    session: Session, answered: Sequence[tuple[ClaimedJob, Completion]], now: datetime
) -> set[uuid.UUID]:
    """Write each answered job's result and mark it succeeded, if still ours (fenced per
    job, as `jobs_repo.complete_job`); returns the ids that were."""
    if not answered:
        return set()
    if not is_postgres(session):
        return {c.id for c, done in answered if jobs_repo.complete_job(session, c, done, now)}
    params = {
        "ids": [c.id for c, _ in answered],
        "att": [c.attempt_no for c, _ in answered],
        "routing_state": [json.dumps(routing_state(c, wait_ms=0)) for c, _ in answered],
        "result": [done.model_dump_json() for _, done in answered],
        "provider": [done.provider for _, done in answered],
        "served_model": [done.model_id for _, done in answered],
        "prompt_tokens": [done.usage.prompt_tokens for _, done in answered],
        "completion_tokens": [done.usage.completion_tokens for _, done in answered],
        # NOT NULL column: an unknown price books 0 here; the result keeps cost_usd None.
        "cost_usd": [_zero_if_none(done.cost_usd) for _, done in answered],
        "finished_at": now,
    }
    return set(session.connection().execute(_COMPLETE, params).scalars())


def close_attempts(
    session: Session, closes: Sequence[tuple[uuid.UUID, int, AttemptClose]]
) -> dict[uuid.UUID, str | None]:
    """Close many attempt rows; per job the outcome each replaced, as `close_attempt`:
    "started" (settle the reservation), "lost" (the sweeper booked it), None (closed)."""
    if not closes:
        return {}
    if not is_postgres(session):
        return {j: jobs_repo.close_attempt(session, j, n, c) for j, n, c in closes}
    cs = [c for _, _, c in closes]
    params = {
        "ids": [j for j, _, _ in closes],
        "att": [n for _, n, _ in closes],
        "outcome": [c.outcome.value for c in cs],
        "latency_ms": [c.latency_ms for c in cs],
        "prompt_tokens": [c.prompt_tokens for c in cs],
        "completion_tokens": [c.completion_tokens for c in cs],
        # NULL when zero: most calls have none, and a NULL costs no bytes in the row
        "cached_tokens": [c.cached_tokens or None for c in cs],
        "cache_write_tokens": [c.cache_write_tokens or None for c in cs],
        "reasoning_tokens": [c.reasoning_tokens or None for c in cs],
        "cost_usd": [c.cost_usd for c in cs],
        "http_status": [c.http_status for c in cs],
        "error_kind": [c.error_kind for c in cs],
        "error_message": [_cut(c.error_message, ERROR_MESSAGE_MAX) for c in cs],
        "request_id": [_cut(c.request_id, 100) for c in cs],
        "usage_estimated": [c.usage_estimated for c in cs],
    }
    started = set(session.connection().execute(_CLOSE, params).scalars())
    out: dict[uuid.UUID, str | None] = {}
    for job_id, attempt_no, close in closes:
        if job_id in started:
            out[job_id] = AttemptOutcome.STARTED.value
        else:  # rare: the sweeper gave the attempt up meanwhile ("lost"), or it is closed
            out[job_id] = jobs_repo.close_attempt(session, job_id, attempt_no, close)
    return out


def _zero_if_none(value: Decimal | None) -> Decimal:
    return value if value is not None else Decimal(0)


def _cut(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None
