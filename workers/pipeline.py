"""`run_job`: the ONE place routing, health, quota, the provider adapter and the ledger meet.

Owns: the order of one job run: claim -> cache lookup -> plan -> admit (rate slot, probe lease,
quota reservation and the attempt row; workers/admission.py, undone there if refused or
superseded) -> one provider call -> finish (attempt row, quota settlement and the job, in one
transaction; workers/attempt.py), and turning each step's value into the run's `Outcome`
(workers/run_types.py), which the task maps to a message. Must not: decide anything itself
(routing, retry, quota and pricing are pure functions in their own modules), write SQL (the
ledger repos do), sleep on a wait (waits become `not_before` plus a countdown message), or
hold a transaction across the provider call.

Transactions per job run: at most three (claim; reserve + attempt insert; finish), plus one
more per extra candidate whose quota reservation was refused, plus one for the cache lookup of
a job with a cache key (a hit finishes the job in that one; core/ledger/cache_repo.py).

Time: `now` is the worker's process clock (UTC), passed in by the task; every later instant
is `now` plus the monotonic time elapsed since (`Clock`), so the ledger, the health store (unix
seconds of the same clock) and `not_before` agree, and a cooldown learned from a reply starts
when the reply arrived, not when the run began.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import ValidationError

from core.ledger import cache_repo, jobs_repo, quota_repo
from core.ledger.db import session_scope
from core.ledger.jobs_repo import ClaimedJob
from core.quota import next_reset
from schemas.job import ErrorKind, ErrorRecord, JobSpec
from schemas.request import in_order
from workers import quota
from workers.admission import Refused, Superseded, Waiting, admit
from workers.attempt import call_and_finish
from workers.embed_attempt import embed_and_finish
from workers.lanes.admit import try_batch_lane
from workers.providers import capabilities_of
from workers.routing import vector_space
from workers.routing.health import HealthSnapshot
from workers.routing.select import RouteRequest, rank_candidates, unserved_feature
from workers.routing.slots import MIN_WAIT_S, next_wake
from workers.run_types import NOOP, Admitted, Clock, Outcome, ParsedJob

if TYPE_CHECKING:
    from workers.runtime import Runtime

__all__ = ["NOOP", "Outcome", "run_claimed", "run_job"]

log = logging.getLogger(__name__)


def run_job(job_id: uuid.UUID, rt: Runtime, now: datetime) -> Outcome:
    """Run one attempt of one job: at most one provider call.

    Args:
        job_id: the job's id, from the message.
        rt: the process runtime (pools, adapters, prices, health store).
        now: the current time (timezone-aware UTC).
    """
    clock = Clock.starting(now)
    with session_scope(rt.sessions) as s:
        lease_s, holder = rt.claim_lease(job_id)  # renewed by heartbeat (workers/heartbeat.py)
        claim = jobs_repo.claim_job(s, job_id, now, lease_s, holder)
    if claim is None:
        return NOOP
    return run_claimed(rt, claim, clock)


def run_claimed(rt: Runtime, claim: ClaimedJob, clock: Clock) -> Outcome:
    """The run of a job this worker has just claimed (`run_job` after its claim; the chunk
    runner hands it the jobs its fast path does not take)."""
    try:
        cached = answer_from_cache(
            rt, claim, clock
        )  # issue 11: a hit needs no route, quota or call
        step = cached if cached is not None else _plan_and_admit(rt, claim, clock)
    except Exception:
        # Redis or Postgres failed before any call: hand the job back now instead of leaving
        # it leased for lease_s (best effort; if the database is the problem the lease and
        # the sweeper recover it).
        _release_quietly(rt, claim)
        raise
    if isinstance(step, Outcome):
        return step
    job, admitted = step
    if job.request.embedding is not None:  # issue 17: an embedding call, same guarantees
        return embed_and_finish(rt, job, admitted, clock)
    return call_and_finish(rt, job, admitted, clock)


def _plan_and_admit(
    rt: Runtime, claim: ClaimedJob, clock: Clock
) -> Outcome | tuple[ParsedJob, Admitted]:
    policy = rt.config.routing
    now = clock.now()
    if claim.budget_attempt_no > policy.max_attempts:
        message = f"attempt budget of {policy.max_attempts} used up"
        return _fail_unrun(rt, claim, ErrorKind.ATTEMPTS_EXHAUSTED, message, now)
    job = parse_claim(rt, claim)
    if job is None:
        return _fail_unrun(rt, claim, ErrorKind.BAD_REQUEST, "stored job spec is unreadable", now)
    now_s = now.timestamp()
    snapshot = rt.health.snapshot(rt.route_deployment_ids(claim.model), now_s)
    plan = rank_candidates(
        job.request,
        rt.config,
        snapshot,
        rt.prices,
        rt.has_key,
        now_s,
        excluded=claim.excluded,
        rng=random.random(),
    )
    if not plan:
        return _no_candidate(rt, job, snapshot, now)
    # issue 18: a chat job with a deadline may wait for a provider batch lane (embedding jobs
    # take the sync lane: the batch flusher builds chat requests only)
    if claim.deadline is not None and job.request.embedding is None:
        laned = try_batch_lane(rt, job, plan, clock)
        if laned is not None:
            return laned
    admission = admit(rt, job, plan, snapshot, clock)
    if isinstance(admission, Admitted):
        return job, admission
    if isinstance(admission, Waiting):
        return _wait(rt, claim, admission.wait_s, clock.now())
    if isinstance(admission, Refused):
        return _park(rt, claim, admission, clock.now())
    assert isinstance(admission, Superseded)
    return Outcome("superseded")


def parse_claim(rt: Runtime, claim: ClaimedJob) -> ParsedJob | None:
    """The stored spec rebuilt whole (parts, tool calls and results, features), or None when
    it no longer validates (it did at submit: only a hand-edited row or a schema change)."""
    try:
        spec = JobSpec(**claim.spec, custom_id=claim.custom_id or str(claim.id), model=claim.model)
    except (ValidationError, TypeError) as exc:
        log.warning("job %s: stored spec does not validate: %s", claim.id, exc)
        return None
    messages = tuple(spec.messages)
    request = RouteRequest(
        claim.model, messages, spec.system, spec.max_tokens, spec.features, spec.embedding
    )
    cfg = rt.config.quota
    if spec.embedding is not None:
        bound = quota.embedding_token_bound(spec.embedding.inputs, cfg.per_message_allowance)
        return ParsedJob(claim, request, spec.temperature, bound)
    bound = quota.prompt_token_bound(
        messages,
        spec.system,
        cfg.per_message_allowance,
        spec.features,
        image_bound=cfg.image_token_bound,
    )
    return ParsedJob(claim, request, spec.temperature, bound)


# ---- response cache (issue 11) ------------------------------------------------------------


def answer_from_cache(rt: Runtime, claim: ClaimedJob, clock: Clock) -> Outcome | None:
    """Finish the job with a fresh cached answer, if it has a cache key and one exists.

    None = not cacheable (no key: decided at submit), the cache is off in this worker's
    config, or a miss: the job runs normally. A hit takes no quota reservation.
    """
    cfg = rt.config.cache
    if claim.cache_key is None or not cfg.enabled or claim.spec.get("cache") is False:
        return None
    asked = clock.now()
    with session_scope(rt.sessions) as s:
        entry = cache_repo.lookup(s, claim.cache_key, claim.id, asked, cfg.ttl_s)
        if entry is None:
            return None
        done = clock.now()
        latency_ms = int((done - asked).total_seconds() * 1000)
        won = cache_repo.record_hit(s, claim, entry, done, latency_ms)
    if not won:
        return Outcome("superseded")
    log.info("job %s answered from the cache (entry: job %s)", claim.id, entry.job_id)
    return Outcome("succeeded")


# ---- outcomes without a call --------------------------------------------------------------


def _wait(rt: Runtime, claim: ClaimedJob, wait_s: float, now: datetime) -> Outcome:
    """Every candidate must wait (rate limit, cooldown, probe): requeue without using up an
    attempt, due when the shortest wait ends."""
    delay = max(wait_s, MIN_WAIT_S)
    not_before = now + timedelta(seconds=delay)
    countdown = delay if delay <= rt.config.routing.max_countdown_s else None
    with session_scope(rt.sessions) as s:
        ok = jobs_repo.requeue_job(
            s,
            claim,
            not_before,
            wait_ms=claim.waited_ms + int(delay * 1000),
            undo_claim=True,
            message_due=not_before if countdown is not None else None,
        )
    return Outcome("waiting", countdown) if ok else NOOP


def _park(rt: Runtime, claim: ClaimedJob, refused: Refused, now: datetime) -> Outcome:
    tokens, usd = refused.tokens, refused.usd
    with session_scope(rt.sessions) as s:
        reason = quota_repo.explain_refusal(s, claim.tenant, claim.batch_id, tokens, usd, now)
        error = ErrorRecord(type=ErrorKind.QUOTA_EXCEEDED.value, message=reason)
        ok = jobs_repo.park_job(s, claim, error, next_reset(now))
    if ok:
        log.info("job %s parked: %s", claim.id, reason)
    return Outcome("parked") if ok else NOOP


def _no_candidate(rt: Runtime, job: ParsedJob, snapshot: HealthSnapshot, now: datetime) -> Outcome:
    """Nothing can serve the job now: fail if no deployment honours its features, wait if
    something only cools down, else fail."""
    claim = job.claim
    unserved = unserved_feature(job.request, rt.config)
    if unserved is not None:  # submit checks this too; a config changed since can still do it
        return _fail_unrun(rt, claim, ErrorKind.NO_DEPLOYMENT, unserved, now)
    now_s = now.timestamp()
    need = job.request.needs()
    ids = tuple(  # only a deployment that could serve the job is worth waiting for
        d
        for d in rt.route_deployment_ids(claim.model)
        if (not need or need <= capabilities_of(rt.deployments[d], rt.config))
        and _kind_refusal(rt, job, d) is None
    )
    wake = next_wake(ids, snapshot, rt.has_key, claim.excluded, now_s)
    if wake is not None:
        return _wait(rt, claim, wake - now_s, now)
    message = _why_unroutable(rt, job)
    return _fail_unrun(rt, claim, ErrorKind.NO_DEPLOYMENT, message, now)


def _why_unroutable(rt: Runtime, job: ParsedJob) -> str:
    claim = job.claim
    ids = rt.route_deployment_ids(claim.model)
    if not ids:
        return f"no deployment is configured for model {claim.model!r}"
    need = job.request.needs()
    reasons = []
    for dep_id in ids:
        if dep_id in claim.excluded:
            reasons.append(f"{dep_id}: failed for this job")
        elif refused := _kind_refusal(rt, job, dep_id):
            reasons.append(f"{dep_id}: {refused}")
        elif not rt.has_key.get(dep_id, False):
            reasons.append(f"{dep_id}: no credentials")
        elif lacking := in_order(need - capabilities_of(rt.deployments[dep_id], rt.config)):
            reasons.append(f"{dep_id}: does not support {', '.join(lacking)}")
        else:
            reasons.append(f"{dep_id}: context window too small")
    return f"no deployment can serve model {claim.model!r} ({'; '.join(reasons)})"


def _kind_refusal(rt: Runtime, job: ParsedJob, dep_id: str) -> str | None:
    """Why the deployment cannot take this kind of job (chat/embedding, vector space)."""
    req = job.request
    return vector_space.refusal(rt.deployments[dep_id], req.model_name, req.embedding, rt.config)


def _fail_unrun(
    rt: Runtime, claim: ClaimedJob, kind: ErrorKind, message: str, now: datetime
) -> Outcome:
    """Fail a job on which this claim made no call (the claim's attempt is given back)."""
    error = ErrorRecord(type=kind.value, message=message)
    with session_scope(rt.sessions) as s:
        ok = jobs_repo.fail_job(s, claim, error, now, undo_claim=True)
    if ok:
        log.info("job %s failed: %s", claim.id, message)
    return Outcome("failed") if ok else NOOP


def _release_quietly(rt: Runtime, claim: ClaimedJob) -> None:
    try:
        with session_scope(rt.sessions) as s:
            jobs_repo.requeue_job(s, claim, None, wait_ms=claim.waited_ms, undo_claim=True)
    except Exception:  # noqa: BLE001 - the original error is the one worth raising
        log.warning("job %s: could not hand back the claim", claim.id, exc_info=True)
