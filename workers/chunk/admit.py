"""Admission of a chunk's jobs: rate slots, then ONE transaction for every attempt row and
every reservation (issue 21).

Owns: `admit_chunk`. Each job gets its plan's first candidate's rate slot (and probe lease);
then one transaction writes all the attempt rows (fenced per job) and reserves the worst
cases, summed per quota group (tenant, batch): a sum fits exactly when every job of the group
would have fitted one after another in one transaction, so the guarantee (spent + reserved
never above a limit) is unchanged. Last, each slot is confirmed (a cooldown stored meanwhile
withdraws that job's attempt). What the chunk cannot decide at once goes to the one-job path
(`pipeline.run_claimed`, which re-plans from scratch), holding nothing:

- a job whose first candidate must wait (rate limit, cooldown, someone else's probe);
- every job of the chunk when any group's sum does not fit: one-by-one admission then
  reserves for as many as fit and parks the rest, exactly as it always has;
- a job whose deployment started cooling down before its call.

Must not: make calls, decide retries, write SQL (the ledger repos do), or hold a slot for a
job it hands to the one-job path.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from core.ledger import admission_repo, chunk_repo, quota_repo
from core.ledger.db import session_scope
from core.ledger.jobs_repo import AttemptStart, ClaimedJob
from workers import quota
from workers.admission import attempt_start
from workers.routing.health import HealthSnapshot
from workers.routing.select import Candidate
from workers.routing.slots import (
    MIN_WAIT_S,
    Hold,
    confirm_slots,
    give_back,
    take_closed_slots,
    take_slot,
)
from workers.run_types import Admitted, Clock, ParsedJob

if TYPE_CHECKING:
    from datetime import datetime

    from workers.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Planned:
    """A claimed, parsed job with its ranked candidates (never empty)."""

    job: ParsedJob
    plan: list[Candidate]
    snapshot: HealthSnapshot


@dataclass(slots=True)
class ChunkAdmission:
    """What `admit_chunk` did with each job."""

    admitted: list[tuple[ParsedJob, Admitted]] = field(default_factory=list)
    one_by_one: list[ClaimedJob] = field(default_factory=list)  # -> pipeline.run_claimed
    superseded: list[ClaimedJob] = field(default_factory=list)  # claim lost: nothing held


@dataclass(frozen=True, slots=True)
class _Held:
    planned: Planned
    hold: Hold
    start: AttemptStart

    @property
    def claim(self) -> ClaimedJob:
        return self.planned.job.claim


def admit_chunk(rt: Runtime, planned: list[Planned], clock: Clock) -> ChunkAdmission:
    """Admit every job it can at once; see the module docstring for the others."""
    out = ChunkAdmission()
    now = clock.now()
    held = _take_slots(rt, planned, now, out)
    if not held:
        return out
    try:
        written = _start_and_reserve(rt, held, now)
    except BaseException:
        _give_back_all(rt, held)
        raise
    if written is None:  # a group's sum did not fit: every job goes one by one
        _give_back_all(rt, held)
        out.one_by_one.extend(h.claim for h in held)
        return out
    lost = [h for h in held if h.claim.id not in written]
    _give_back_all(rt, lost)
    out.superseded.extend(h.claim for h in lost)
    _confirm_all(rt, [h for h in held if h.claim.id in written], clock, out)
    return out


def _take_slots(
    rt: Runtime, planned: list[Planned], now: datetime, out: ChunkAdmission
) -> list[_Held]:
    """Each job's first candidate's rate slot: closed circuits in one round trip to the
    health store, a half-open one (a probe lease) on its own."""
    probe_wait_s = max(rt.config.routing.default_cooldown_s, MIN_WAIT_S)
    closed = [p for p in planned if p.snapshot.get(p.plan[0].deployment_id).circuit == "closed"]
    probing = [p for p in planned if p.snapshot.get(p.plan[0].deployment_id).circuit != "closed"]
    answers = take_closed_slots(rt.health, [p.plan[0] for p in closed], now.timestamp())
    held: list[_Held] = []
    try:
        for p, hold in zip(closed, answers, strict=True):
            _hold_or_hand_on(rt, p, hold, now, held, out)
        for p in probing:
            circuit = p.snapshot.get(p.plan[0].deployment_id).circuit
            hold = take_slot(rt.health, p.plan[0], circuit, now.timestamp(), probe_wait_s)
            _hold_or_hand_on(rt, p, hold, now, held, out)
    except BaseException:
        _give_back_all(rt, held)
        raise
    return held


def _hold_or_hand_on(  # noqa: PLR0913 - one job's answer and where it goes
    rt: Runtime,
    p: Planned,
    hold: Hold | float,
    now: datetime,
    held: list[_Held],
    out: ChunkAdmission,
) -> None:
    if not isinstance(hold, Hold):
        out.one_by_one.append(p.job.claim)  # must wait: the one-job path says how long
        return
    cand = p.plan[0]
    price = rt.prices.get(cand.deployment_id)
    tokens, usd = quota.worst_case(p.job.prompt_bound, cand.max_tokens, price)
    held.append(_Held(p, hold, attempt_start(p.job.claim, cand, now, tokens, usd)))


def _start_and_reserve(rt: Runtime, held: list[_Held], now: datetime) -> set[UUID] | None:
    """The attempt rows, then each group's summed reservation (last, so the quota rows stay
    locked only for their UPDATEs and the commit). The ids written, or None (rolled back)
    when a group's sum does not fit."""
    with session_scope(rt.sessions) as s:
        written = chunk_repo.start_attempts(s, [(h.claim, h.start) for h in held])
        groups: dict[tuple[str, UUID, Decimal | None], list[_Held]] = defaultdict(list)
        for h in held:
            if h.claim.id in written:
                groups[(h.claim.tenant, h.claim.batch_id, h.claim.batch_max_cost)].append(h)
        for (tenant, batch_id, max_cost), members in groups.items():
            tokens = sum(h.start.reserved_tokens for h in members)
            usd = sum((h.start.reserved_usd for h in members), Decimal(0))
            if not quota_repo.reserve(s, tenant, batch_id, max_cost, tokens, usd, now):
                s.rollback()  # no attempt row, nothing reserved
                return None
    return written


def _confirm_all(rt: Runtime, held: list[_Held], clock: Clock, out: ChunkAdmission) -> None:
    """Confirm every slot right before the calls (one round trip); a deployment that started
    cooling down meanwhile gets its job's attempt withdrawn (it goes one by one)."""
    try:
        cooling = confirm_slots(rt.health, [h.hold for h in held], clock.now().timestamp())
    except BaseException:
        _give_back_all(rt, held)
        for h in held:
            _withdraw_quietly(rt, h)
        raise
    for h, cooling_s in zip(held, cooling, strict=True):
        if cooling_s > 0:
            _withdraw(rt, h)
            out.one_by_one.append(h.claim)
            continue
        p = h.planned
        cand = p.plan[0]
        price = rt.prices.get(cand.deployment_id)
        out.admitted.append((p.job, Admitted(cand, price, h.start, len(p.plan) - 1)))


def _withdraw(rt: Runtime, h: _Held) -> None:
    with session_scope(rt.sessions) as s:
        admission_repo.withdraw_attempt(s, h.claim, h.start)


def _withdraw_quietly(rt: Runtime, h: _Held) -> None:
    try:
        _withdraw(rt, h)
    except Exception:  # noqa: BLE001 - the sweeper releases it a lease later
        log.warning("job %s: could not withdraw the attempt", h.claim.id, exc_info=True)


def _give_back_all(rt: Runtime, held: list[_Held]) -> None:
    for h in held:
        try:
            give_back(rt.health, h.hold)
        except Exception:  # noqa: BLE001 - the slot ages out of its window anyway
            log.warning("could not give back the slot on %s", h.hold.dep_id, exc_info=True)
