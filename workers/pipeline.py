"""`run_job`: the ONE place routing, health, quota, the provider adapter and the ledger meet.

Owns: the order of one job run: claim -> cache lookup -> plan -> admit (rate limit, quota
reservation and the attempt row) -> one provider call -> finish (attempt row, quota settlement
and the job, in one transaction; workers/attempt.py). Returns an `Outcome` value; the task maps
it to a message. Must not: decide anything itself (routing, retry, quota and pricing are pure
functions in their own modules), write SQL (the ledger repos do), sleep on a wait (waits become
`not_before` plus a countdown message), or hold a transaction across the provider call.

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
from decimal import Decimal
from typing import TYPE_CHECKING

from core.ledger import cache_repo, jobs_repo, quota_repo
from core.ledger.db import session_scope
from core.ledger.jobs_repo import AttemptStart, ClaimedJob
from schemas.job import ChatMessage, ErrorKind, ErrorRecord
from workers import quota
from workers.attempt import NOOP, Clock, Job, Outcome, Slot, call_and_finish
from workers.routing.health import HealthSnapshot
from workers.routing.select import Candidate, RouteRequest, rank_candidates

if TYPE_CHECKING:
    from workers.runtime import Runtime

__all__ = ["NOOP", "Outcome", "run_job"]

log = logging.getLogger(__name__)

# Shortest reschedule: a bucket that refills in microseconds still gets a real countdown.
MIN_WAIT_S = 0.05


class _Superseded(Exception):
    """Raised inside a transaction to roll it back: another claim owns the job now."""


class _Refused(Exception):
    """Raised inside a transaction to roll it back: the quota reservation was refused."""


def run_job(job_id: uuid.UUID, rt: Runtime, now: datetime) -> Outcome:
    """Run one attempt of one job: at most one provider call.

    Args:
        job_id: the job's id, from the message.
        rt: the process runtime (pools, adapters, prices, health store).
        now: the current time (timezone-aware UTC).
    """
    clock = Clock.starting(now)
    with session_scope(rt.sessions) as s:
        claim = jobs_repo.claim_job(s, job_id, now, rt.settings.lease_s)
    if claim is None:
        return NOOP
    try:
        admitted = _from_cache(rt, claim, clock)  # issue 11: a hit needs no route, quota or call
        if admitted is None:
            admitted = _plan_and_admit(rt, claim, clock)
    except Exception:
        # Redis or Postgres failed before any call: hand the job back now instead of leaving
        # it leased for lease_s (best effort; if the database is the problem the lease and
        # the sweeper recover it).
        _release_quietly(rt, claim)
        raise
    if isinstance(admitted, Outcome):
        return admitted
    job, slot = admitted
    return call_and_finish(rt, job, slot, clock)


def _plan_and_admit(rt: Runtime, claim: ClaimedJob, clock: Clock) -> Outcome | tuple[Job, Slot]:
    policy = rt.config.routing
    now = clock.now()
    if claim.budget_attempt_no > policy.max_attempts:
        message = f"attempt budget of {policy.max_attempts} used up"
        return _fail_unrun(rt, claim, ErrorKind.ATTEMPTS_EXHAUSTED, message, now)
    job = _parse(rt, claim)
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
        return _no_candidate(rt, claim, snapshot, now)
    admitted = _admit(rt, job, plan, snapshot, clock)
    return admitted if isinstance(admitted, Outcome) else (job, admitted)


def _parse(rt: Runtime, claim: ClaimedJob) -> Job | None:
    spec = claim.spec
    try:
        # Validated at submit; model_construct skips re-validating on the hot path.
        messages = tuple(
            ChatMessage.model_construct(role=m["role"], content=m["content"])
            for m in spec["messages"]
        )
    except (KeyError, TypeError):
        return None
    system = spec.get("system")
    request = RouteRequest(claim.model, messages, system, spec.get("max_tokens"))
    bound = quota.prompt_token_bound(messages, system, rt.config.quota.per_message_allowance)
    return Job(claim, request, spec.get("temperature"), bound)


# ---- response cache (issue 11) ------------------------------------------------------------


def _from_cache(rt: Runtime, claim: ClaimedJob, clock: Clock) -> Outcome | None:
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


# ---- admission ----------------------------------------------------------------------------


def _admit(
    rt: Runtime, job: Job, plan: list[Candidate], snapshot: HealthSnapshot, clock: Clock
) -> Slot | Outcome:
    """Walk the plan: the first candidate with rate-limit headroom and quota room wins."""
    wait_s: float | None = None
    refused: tuple[int, Decimal] | None = None
    for i, cand in enumerate(plan):
        dep = cand.deployment
        dep_id = cand.deployment_id
        now = clock.now()
        now_s = now.timestamp()
        if snapshot.get(dep_id).circuit != "closed" and not rt.health.claim_probe(dep_id, now_s):
            # Someone else is probing this half-open deployment; its answer comes soon.
            wait_s = _shorter(wait_s, max(rt.config.routing.default_cooldown_s, MIN_WAIT_S))
            continue
        tokens = cand.est_prompt_tokens + cand.max_tokens
        wait = rt.health.try_acquire(dep_id, dep.rpm, dep.tpm, tokens, now_s)
        if wait > 0:
            wait_s = _shorter(wait_s, wait)
            continue
        price = rt.prices.get(dep_id)
        reserve_tokens, reserve_usd = quota.worst_case(job.prompt_bound, cand.max_tokens, price)
        start = AttemptStart(
            provider=dep.provider.value,
            model=dep.model_id or dep.name,
            deployment=dep_id,
            started_at=now,
            reserved_tokens=reserve_tokens,
            reserved_usd=reserve_usd,
            waited_ms=job.claim.waited_ms,
        )
        started = _reserve_and_start(rt, job.claim, start)
        if started is None:
            return Outcome("superseded")
        if started:
            return Slot(cand, price, start, left=len(plan) - i - 1)
        refused = (reserve_tokens, reserve_usd)
    if wait_s is not None:
        return _wait(rt, job.claim, wait_s, clock.now())
    assert refused is not None  # every candidate either waited or was refused
    return _park(rt, job.claim, refused, clock.now())


def _reserve_and_start(rt: Runtime, claim: ClaimedJob, start: AttemptStart) -> bool | None:
    """Insert the attempt row and reserve the worst case, in one transaction.

    True = both done; False = no quota room (rolled back: no row, nothing reserved); None =
    the job is no longer ours (rolled back, nothing reserved). The reservation goes LAST so
    the tenant's quota window row stays locked only for that UPDATE and the commit, not for
    the attempt insert too (issue 10: every job of a tenant queues on that row lock).
    """
    try:
        with session_scope(rt.sessions) as s:
            if not jobs_repo.start_attempt(s, claim, start):
                raise _Superseded
            ok = quota_repo.reserve(
                s,
                claim.tenant,
                claim.batch_id,
                claim.batch_max_cost,
                start.reserved_tokens,
                start.reserved_usd,
                start.started_at,
            )
            if not ok:
                raise _Refused
    except _Superseded:
        return None
    except _Refused:
        return False
    return True


def _shorter(current: float | None, new: float) -> float:
    return new if current is None else min(current, new)


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


def _park(rt: Runtime, claim: ClaimedJob, refused: tuple[int, Decimal], now: datetime) -> Outcome:
    tokens, usd = refused
    with session_scope(rt.sessions) as s:
        reason = quota_repo.explain_refusal(s, claim.tenant, claim.batch_id, tokens, usd, now)
        error = ErrorRecord(type=ErrorKind.QUOTA_EXCEEDED.value, message=reason)
        ok = jobs_repo.park_job(s, claim, error, quota_repo.next_reset(now))
    if ok:
        log.info("job %s parked: %s", claim.id, reason)
    return Outcome("parked") if ok else NOOP


def _no_candidate(
    rt: Runtime, claim: ClaimedJob, snapshot: HealthSnapshot, now: datetime
) -> Outcome:
    """Nothing can serve the job now: wait if something only cools down, else fail."""
    now_s = now.timestamp()
    wakes: list[float] = []
    for dep_id in rt.route_deployment_ids(claim.model):
        if dep_id in claim.excluded or not rt.has_key.get(dep_id, False):
            continue
        h = snapshot.get(dep_id)
        if h.cooldown_until > now_s:
            wakes.append(h.cooldown_until)
        elif h.circuit == "open" and h.open_until > now_s:
            wakes.append(h.open_until)
    if wakes:
        return _wait(rt, claim, min(wakes) - now_s, now)
    message = _why_unroutable(rt, claim)
    return _fail_unrun(rt, claim, ErrorKind.NO_DEPLOYMENT, message, now)


def _why_unroutable(rt: Runtime, claim: ClaimedJob) -> str:
    ids = rt.route_deployment_ids(claim.model)
    if not ids:
        return f"no deployment is configured for model {claim.model!r}"
    reasons = []
    for dep_id in ids:
        if dep_id in claim.excluded:
            reasons.append(f"{dep_id}: failed for this job")
        elif not rt.has_key.get(dep_id, False):
            reasons.append(f"{dep_id}: no credentials")
        else:
            reasons.append(f"{dep_id}: context window too small")
    return f"no deployment can serve model {claim.model!r} ({'; '.join(reasons)})"


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
