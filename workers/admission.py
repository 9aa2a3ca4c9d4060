"""Admission: the one step between a job's plan and its provider call, and one that can be undone.

Owns: `admit`, which walks the plan and, for the first candidate that fits, takes its half-open
probe lease and rate-limit slot (health store, `routing.slots`), then writes the attempt row and
reserves the worst case (ONE Postgres transaction), then, as the last step before the call,
confirms the slot: a cooldown (Retry-After) stored while the quota was being reserved gives
the admission back and withdraws the attempt row and reservation (issue 20, item 12). The
result is a value:

    Admitted    the call may go: slot held, quota reserved, attempt row written
    Waiting     every candidate must wait (rate limit, cooldown, someone else's probe)
    Refused     no candidate with headroom had quota room (the last refused worst case)
    Superseded  the claim lost the job to a newer one; nothing was written

What a candidate took and does not use is given back before the walk moves on or returns: a
refused reservation or a superseded claim returns its rate slot (the request and its tokens)
and ends its probe lease. Refused jobs therefore burn no rate limit, and a probe whose call is
never made does not keep a deployment unprobed for the lease's 120 s.

Must not: make the call, decide retries (workers/retry.py), write SQL (the ledger repos do),
sleep, or open more than one transaction per candidate tried (two when the candidate started
cooling down before its call: the reservation, then its withdrawal).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from core.ledger import admission_repo, jobs_repo, quota_repo
from core.ledger.db import session_scope
from core.ledger.jobs_repo import AttemptStart, ClaimedJob
from workers import quota
from workers.routing.health import HealthSnapshot
from workers.routing.select import Candidate
from workers.routing.slots import MIN_WAIT_S, Hold, confirm_slot, give_back, take_slot
from workers.run_types import Admitted, Clock, ParsedJob

if TYPE_CHECKING:
    from workers.runtime import Runtime

__all__ = ["Admission", "Refused", "Superseded", "Waiting", "admit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Waiting:
    """Every candidate must wait; `wait_s` (seconds) is the shortest wait."""

    wait_s: float


@dataclass(frozen=True, slots=True)
class Refused:
    """No quota room: the last refused worst case, for the refusal's explanation."""

    tokens: int
    usd: Decimal


@dataclass(frozen=True, slots=True)
class Superseded:
    """The claim no longer holds the job."""


Admission = Admitted | Waiting | Refused | Superseded

_Reservation = Literal["reserved", "refused", "superseded"]


def admit(
    rt: Runtime, job: ParsedJob, plan: list[Candidate], snapshot: HealthSnapshot, clock: Clock
) -> Admission:
    """Walk the plan: the first candidate with rate-limit headroom and quota room wins."""
    wait_s: float | None = None
    refused: Refused | None = None
    probe_wait_s = max(rt.config.routing.default_cooldown_s, MIN_WAIT_S)
    for i, cand in enumerate(plan):
        now = clock.now()
        circuit = snapshot.get(cand.deployment_id).circuit
        keys = getattr(rt.adapters.get(cand.deployment_id), "keys", None)
        held = take_slot(rt.health, cand, circuit, now.timestamp(), probe_wait_s, keys)
        if not isinstance(held, Hold):
            wait_s = held if wait_s is None else min(wait_s, held)
            continue
        price = rt.prices.get(cand.deployment_id)
        tokens, usd = quota.worst_case(job.prompt_bound, cand.max_tokens, price)
        start = attempt_start(job.claim, cand, now, tokens, usd)
        try:
            reservation = _reserve_and_start(rt, job.claim, start)
        except BaseException:
            _give_back_quietly(rt, held)
            raise
        if reservation == "reserved":
            cooling_s = _confirm(rt, job.claim, held, start, clock)
            if cooling_s <= 0:
                left = len(plan) - i - 1
                return Admitted(cand, price, start, left, held.key, held.bucket)
            wait_s = cooling_s if wait_s is None else min(wait_s, cooling_s)
            continue
        give_back(rt.health, held)
        if reservation == "superseded":
            return Superseded()
        refused = Refused(tokens, usd)
    if wait_s is not None:
        return Waiting(wait_s)
    assert refused is not None  # every candidate either waited or was refused
    return refused


def attempt_start(
    claim: ClaimedJob, cand: Candidate, now: datetime, tokens: int, usd: Decimal
) -> AttemptStart:
    dep = cand.deployment
    return AttemptStart(
        provider=dep.provider.value,
        model=dep.model_id or dep.name,
        deployment=cand.deployment_id,
        started_at=now,
        reserved_tokens=tokens,
        reserved_usd=usd,
        waited_ms=claim.waited_ms,
    )


def _reserve_and_start(rt: Runtime, claim: ClaimedJob, start: AttemptStart) -> _Reservation:
    """Insert the attempt row and reserve the worst case, in one transaction.

    "reserved" = both done; "refused" = no quota room; "superseded" = the job is no longer
    ours. Either of the last two rolls the transaction back: no row, nothing reserved. The
    reservation goes LAST so the tenant's quota window row stays locked only for that UPDATE
    and the commit, not for the attempt insert too (issue 10: every job of a tenant queues on
    that row lock).
    """
    with session_scope(rt.sessions) as s:
        if not jobs_repo.start_attempt(s, claim, start):
            s.rollback()  # nothing was written; ends the transaction at once
            return "superseded"
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
            s.rollback()  # drops the attempt row inserted above
            return "refused"
    return "reserved"


def _confirm(
    rt: Runtime, claim: ClaimedJob, held: Hold, start: AttemptStart, clock: Clock
) -> float:
    """The last step before the call: 0.0 = go. Otherwise the deployment cools down; the slot
    is already given back (atomically, by the store) and the attempt row and reservation are
    withdrawn here; returns the seconds the cooldown has left."""
    try:
        cooling_s = confirm_slot(rt.health, held, clock.now().timestamp())
    except BaseException:
        _give_back_quietly(rt, held)
        try:
            _withdraw(rt, claim, start)  # the call will not go: nothing stays reserved
        except Exception:  # noqa: BLE001 - the sweeper releases it a lease later
            log.warning("job %s: could not withdraw the attempt", claim.id, exc_info=True)
        raise
    if cooling_s > 0:
        _withdraw(rt, claim, start)
        log.info("job %s: %s cools down %.2fs; call not sent", claim.id, held.dep_id, cooling_s)
    return cooling_s


def _withdraw(rt: Runtime, claim: ClaimedJob, start: AttemptStart) -> None:
    with session_scope(rt.sessions) as s:
        admission_repo.withdraw_attempt(s, claim, start)


def _give_back_quietly(rt: Runtime, held: Hold) -> None:
    """Give back after a failed reservation; the reservation's error is the one to raise."""
    try:
        give_back(rt.health, held)
    except Exception:  # noqa: BLE001 - the slot ages out of its window anyway
        log.warning("could not give back the slot on %s", held.dep_id, exc_info=True)
