"""`run_chunk`: one attempt of each job of a chunk, with its calls in flight together (issue 21).

Owns: the order of a chunk's run: claim every id in one statement -> per job, the cache and
a plan (pure ranking; one health snapshot per model) -> admission of all planned jobs at once
(workers/chunk/admit.py: rate slots, one transaction of attempt rows and summed reservations)
-> every admitted call concurrently on the process's call loop (workers/chunk/calls.py) ->
the answered ones finished in one transaction (workers/chunk/finish.py), failed and unusable
ones one by one through the same code as a one-job run (workers/attempt.py, so retries,
fallback, health and billing are decided the same way). Jobs the chunk cannot take at once
go through the one-job path (`pipeline.run_claimed`) in this thread: a job with a deadline
(batch lanes), an embedding, a job whose budget is used up or whose spec no longer parses, a
deployment with a rotating key pool, nothing to route to, or what admission hands back.

Must not: decide anything itself (routing, retry, quota and pricing are the same pure
functions as in a one-job run), write SQL, or hold a transaction across the calls.

Transactions per chunk of N plain jobs: claim 1, admission 1, finish 1 (plus one per cache
lookup, and one per failed call).
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from core.ledger import jobs_repo
from core.ledger.db import session_scope
from core.ledger.jobs_repo import ClaimedJob
from workers.answer import Answer
from workers.attempt import check_reply, finish_raised, provider_request
from workers.chunk.admit import Planned, admit_chunk
from workers.chunk.calls import CallLoop, SlotPool, call_loop
from workers.chunk.finish import finish_answers
from workers.pipeline import answer_from_cache, parse_claim, run_claimed
from workers.routing.health import HealthSnapshot, SuccessCall
from workers.routing.select import rank_candidates
from workers.run_types import Admitted, Clock, Outcome, ParsedJob

if TYPE_CHECKING:
    from workers.providers.base import ProviderReply
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

Outcomes = dict[UUID, Outcome]
# A wave waits for at least this many free call slots (or half of them, if fewer): bigger
# waves cost less CPU a job (one claim, admission and finish for all), but slots idle while
# they gather, which starves a rate-capped provider (bench: 16 keeps both figures).
MIN_WAVE = 16


def run_chunk(
    job_ids: Sequence[UUID],
    rt: Runtime,
    now: datetime,
    priority: int = 0,
    *,
    yield_now: Callable[[], bool] | None = None,
    left: list[UUID] | None = None,
) -> Outcomes:
    """Run one attempt of every claimable job among `job_ids`; their outcomes by id (a job
    not claimed, because it is finished, not due or held elsewhere, has none).

    In waves: each takes call slots first (at least MIN_WAVE or half of the process's, or
    what is left), then claims that many ids; an id not yet in a wave stays queued, so a cancel or a
    duplicate message still finds it so. `priority`: the message's (lower first). After a
    wave, `yield_now()` True stops the run: the ids not yet run go to `left` (the task sends
    them again), so a bulk chunk gives its thread up when smaller work waits.
    """
    clock = Clock.starting(now)
    calls = call_loop(rt.calls_in_flight)
    least = max(1, min(rt.calls_in_flight // 2, MIN_WAVE))
    out: Outcomes = {}
    remaining = list(job_ids)
    while remaining:
        n = calls.slots.take(len(remaining), least, priority)
        wave, remaining = remaining[:n], remaining[n:]
        slots = _WaveSlots(calls.slots, n)
        try:
            out.update(_run_wave(rt, calls, wave, slots, clock))
        finally:
            slots.give(slots.held)
        if remaining and yield_now is not None and yield_now():
            if left is not None:
                left.extend(remaining)
            break
    return out


class _WaveSlots:
    """The call slots one wave holds, given back as its jobs finish."""

    def __init__(self, pool: SlotPool, held: int) -> None:
        self.pool = pool
        self.held = held

    def give(self, n: int) -> None:
        n = min(n, self.held)
        self.held -= n
        self.pool.give(n)

    def hand_over(self, n: int) -> None:
        """`n` slots now belong to an `InFlight`, which gives them back itself."""
        self.held -= n


def _run_wave(
    rt: Runtime, calls: CallLoop, wave: list[UUID], slots: _WaveSlots, clock: Clock
) -> Outcomes:
    now = clock.now()
    with session_scope(rt.sessions) as s:
        lease_s, holder = rt.claim_lease(wave[0])  # the task holds every id of the chunk
        claims = jobs_repo.claim_jobs(s, wave, now, lease_s, holder)
    slots.give(len(wave) - len(claims))
    out: Outcomes = {}
    one_by_one: list[ClaimedJob] = []
    try:
        planned = _plan_all(rt, claims, clock, out, one_by_one)
        admission = admit_chunk(rt, planned, clock)
    except Exception:
        _release_quietly(rt, [c for c in claims if c.id not in out])
        raise
    one_by_one += admission.one_by_one
    out.update((c.id, Outcome("superseded")) for c in admission.superseded)
    slots.give(len(claims) - len(admission.admitted) - len(one_by_one))
    # the one-job runs go on side threads meanwhile (an embedding or a batch-lane job makes
    # its own call), each holding its slot until it is over
    side = [
        one_job_runner(rt.calls_in_flight).submit(run_claimed, rt, c, clock) for c in one_by_one
    ]
    try:
        out.update(_call_and_finish(rt, calls, admission.admitted, slots, clock))
    finally:
        out.update(_collect(one_by_one, side, slots))
    return out


def _collect(claims: list[ClaimedJob], side: list[Future[Outcome]], slots: _WaveSlots) -> Outcomes:
    """Wait for every one-job run, give back each one's slot, and return their outcomes (the
    first error is raised once all have ended, so no slot is left held)."""
    out: Outcomes = {}
    error: BaseException | None = None
    for claim, future in zip(claims, side, strict=True):
        try:
            out[claim.id] = future.result()
        except BaseException as exc:  # noqa: BLE001 - raised below, after the others
            error = error or exc
        finally:
            slots.give(1)
    if error is not None:
        raise error
    return out


_runners: dict[tuple[int, int], ThreadPoolExecutor] = {}
_runners_lock = threading.Lock()


def one_job_runner(limit: int) -> ThreadPoolExecutor:
    """This process's threads for the one-job runs of chunks (as many as its call slots)."""
    key = (os.getpid(), limit)
    with _runners_lock:
        if key not in _runners:
            _runners[key] = ThreadPoolExecutor(limit, thread_name_prefix="llmq-one-job")
        return _runners[key]


def _plan_all(
    rt: Runtime,
    claims: list[ClaimedJob],
    clock: Clock,
    out: Outcomes,
    one_by_one: list[ClaimedJob],
) -> list[Planned]:
    snapshots: dict[str, HealthSnapshot] = {}
    planned: list[Planned] = []
    for claim in claims:
        cached = answer_from_cache(rt, claim, clock) if _cacheable(rt, claim) else None
        if cached is not None:
            out[claim.id] = cached
            continue
        p = _plan(rt, claim, clock, snapshots)
        if p is None:
            one_by_one.append(claim)
        else:
            planned.append(p)
    return planned


def _cacheable(rt: Runtime, claim: ClaimedJob) -> bool:
    return claim.cache_key is not None and rt.config.cache.enabled


def _plan(
    rt: Runtime, claim: ClaimedJob, clock: Clock, snapshots: dict[str, HealthSnapshot]
) -> Planned | None:
    """The job's plan, or None when the one-job path must take it (module docstring)."""
    if claim.deadline is not None or claim.budget_attempt_no > rt.config.routing.max_attempts:
        return None
    job = parse_claim(rt, claim)
    if job is None or job.request.embedding is not None:
        return None
    now_s = clock.now().timestamp()
    snapshot = snapshots.get(claim.model)
    if snapshot is None:
        snapshot = rt.health.snapshot(rt.route_deployment_ids(claim.model), now_s)
        snapshots[claim.model] = snapshot
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
        return None
    adapter = rt.adapters.get(plan[0].deployment_id)
    if adapter is None or adapter.keys:  # a rotating key pool pins keys per thread
        return None
    return Planned(job, plan, snapshot)


def _call_and_finish(
    rt: Runtime,
    calls: CallLoop,
    admitted: list[tuple[ParsedJob, Admitted]],
    slots: _WaveSlots,
    clock: Clock,
) -> Outcomes:
    """Every admitted call sent at once; what has ended is finished together (the answers
    in one transaction, failures one by one) while the rest are still in flight, and each
    slot is given back once its job's finish is committed."""
    if not admitted:
        return {}
    requests = [(rt.adapters[a.start.deployment], provider_request(j, a)) for j, a in admitted]
    slots.hand_over(len(requests))
    inflight = calls.start(requests)
    out: Outcomes = {}
    while inflight.left:
        done = inflight.next_done()
        try:
            out.update(_finish_done(rt, [(admitted[i], r, e) for i, r, e in done], clock))
        except BaseException:
            inflight.abandon()
            raise
        finally:
            inflight.release(len(done))
    return out


def _finish_done(
    rt: Runtime,
    done: list[tuple[tuple[ParsedJob, Admitted], ProviderReply | Exception, float]],
    clock: Clock,
) -> Outcomes:
    out: Outcomes = {}
    answers: list[Answer] = []
    now_s = clock.now().timestamp()
    answered = [
        SuccessCall(adm.slot_id, r.latency_ms or int(e * 1000), r.rate_limits, now_s)
        for (_, adm), r, e in done
        if not isinstance(r, Exception)
    ]
    rt.health.record_success_many(answered)  # whatever the outputs' verdicts: they answered
    for (job, adm), result, elapsed in done:
        if isinstance(result, Exception):
            out[job.claim.id] = finish_raised(rt, job, adm, result, clock, elapsed)
            continue
        checked = check_reply(rt, job, adm, result, clock, elapsed, health_recorded=True)
        if isinstance(checked, Outcome):
            out[job.claim.id] = checked
        else:
            answers.append(checked)
    out.update(finish_answers(rt, answers))
    return out


def _release_quietly(rt: Runtime, claims: list[ClaimedJob]) -> None:
    """Hand back claims after a failure before any call (best effort, as the one-job path:
    if the database is the problem, leases and the sweeper recover them)."""
    try:
        with session_scope(rt.sessions) as s:
            for claim in claims:
                jobs_repo.requeue_job(s, claim, None, wait_ms=claim.waited_ms, undo_claim=True)
    except Exception:  # noqa: BLE001 - the original error is the one worth raising
        log.warning("could not hand back %d claims", len(claims), exc_info=True)
