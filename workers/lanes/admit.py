"""Admission to a batch lane (issue 18): the claimed job's attempt waits in a provider batch.

Owns: `try_batch_lane`, called by the pipeline after the plan, before the sync admission. When
the pure rule (workers/routing/lanes.py) sends the job to a batch lane, ONE transaction writes
the attempt row (lane batch), reserves the worst case at the batch price, adds the pending item
and moves the job to `batched` (no lease, no message; the flusher and poller take it from
there). Must not: make a provider call, take a rate slot (batch APIs have limits of their own),
or write SQL (core/ledger/lanes_repo.py does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.ledger import jobs_repo, lanes_repo, quota_repo
from core.ledger.db import session_scope
from workers import quota
from workers.admission import attempt_start
from workers.routing.lanes import choose_batch, lane_open
from workers.routing.select import Candidate
from workers.run_types import Clock, Outcome, ParsedJob

if TYPE_CHECKING:
    from workers.runtime import Runtime


def custom_id_of(job_id: object, attempt_no: int) -> str:
    """The item's id in its provider batch: unique, and within every provider's rules."""
    return f"{getattr(job_id, 'hex', job_id)}-{attempt_no}"


def try_batch_lane(
    rt: Runtime, job: ParsedJob, plan: list[Candidate], clock: Clock
) -> Outcome | None:
    """Outcome("batched") when the job now waits in a batch lane; None = take the sync lane
    (no deadline, too little time left, no batch-capable candidate, or no quota room at the
    batch price: the sync admission then decides, and parks the job if it must)."""
    claim, cfg, now = job.claim, rt.config.batch_lane, clock.now()
    if not lane_open(claim.deadline, now, cfg.enabled, cfg.window_s, cfg.margin_s):
        return None
    choice = choose_batch(plan, lambda d: d in rt.batch_prices, rt.batch_prices.get)
    if choice is None:
        return None
    cand = choice.candidate
    tokens, usd = quota.worst_case(job.prompt_bound, cand.max_tokens, choice.price)
    start = attempt_start(claim, cand, now, tokens, usd)
    assert claim.deadline is not None
    with session_scope(rt.sessions) as s:
        if not jobs_repo.start_attempt(s, claim, start):
            s.rollback()
            return Outcome("superseded")
        ok = quota_repo.reserve(
            s, claim.tenant, claim.batch_id, claim.batch_max_cost, tokens, usd, now
        )
        if not ok:
            s.rollback()
            return None
        cid = custom_id_of(claim.id, claim.attempt_no)
        if not lanes_repo.enter_lane(s, claim, cand.deployment_id, cid, claim.deadline, now):
            s.rollback()
            return Outcome("superseded")
    return Outcome("batched")
