"""The ledger side of provider batch lanes (issue 18): items, provider batches, and moving a
job between `running` and `batched`.

Owns: every write to `provider_batch_items` and `provider_batches`, the attempt's lane fields,
and the two job transitions only lanes make: running -> batched (the admission's last step) and
batched -> running (the first step of applying an item's result, so the ordinary fenced finish
in `jobs_repo` then writes the attempt, the quota settlement and the job in the same
transaction). Must not: commit or open transactions (callers pass a session inside
`session_scope`), decide anything, or read the clock (callers pass `now`).

The fence: an item is (job, attempt number). Moving a job back to running is conditioned on
`state = 'batched' AND attempts = <the item's attempt>`, and the attempt close on the row still
being `started`; a result applied twice, or for an attempt the job left behind, changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from core.ledger.jobs_repo import ClaimedJob
from core.ledger.models import Attempt, Batch, Job, ProviderBatch, ProviderBatchItem
from schemas.job import AttemptOutcome, JobState

_jobs, _attempts, _batches = Job.__table__, Attempt.__table__, Batch.__table__
_items, _pb = ProviderBatchItem.__table__, ProviderBatch.__table__
APPLY_LEASE_S = 120.0  # the lease a job holds between batched -> running and its finish


@dataclass(frozen=True, slots=True)
class ItemRow:
    """An item with what applying its result needs: the job as a claim, the attempt's start."""

    claim: ClaimedJob
    custom_id: str
    deadline: datetime
    deployment: str
    model: str  # the provider's model id the attempt named
    started_at: datetime
    reserved_tokens: int
    reserved_usd: Decimal


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: uuid.UUID
    deployment: str
    provider: str
    external_id: str | None
    state: str
    items: int
    created_at: datetime
    earliest_deadline: datetime | None = None


def enter_lane(
    session: Session,
    claim: ClaimedJob,
    deployment: str,
    custom_id: str,
    deadline: datetime,
    now: datetime,
) -> bool:
    """The claimed job (its attempt row already written) waits in `deployment`'s batch lane:
    the attempt marked lane batch, a pending item, the job `batched` with no lease. Fenced."""
    moved = session.execute(
        update(_jobs)
        .where(
            _jobs.c.id == claim.id,
            _jobs.c.attempts == claim.attempt_no,
            _jobs.c.state == JobState.RUNNING.value,
        )
        .values(state=JobState.BATCHED.value, lease_until=None, worker_id=None)
    ).rowcount
    if moved != 1:
        return False
    session.execute(
        update(_attempts)
        .where(_attempts.c.job_id == claim.id, _attempts.c.attempt_no == claim.attempt_no)
        .values(lane="batch")
    )
    session.execute(
        _items.insert().values(
            job_id=claim.id,
            attempt_no=claim.attempt_no,
            deployment=deployment,
            custom_id=custom_id,
            deadline=deadline,
            created_at=now,
            state="pending",
        )
    )
    return True


def pending_by_deployment(session: Session) -> list[tuple[str, int, datetime]]:
    """(deployment, pending items, oldest item's time) for each deployment with pending items."""
    rows = session.execute(
        select(_items.c.deployment, func.count(), func.min(_items.c.created_at))
        .where(_items.c.state == "pending")
        .group_by(_items.c.deployment)
    )
    return [(r[0], int(r[1]), r[2]) for r in rows]


def record_intent(
    session: Session, deployment: str, provider: str, limit: int, now: datetime
) -> uuid.UUID | None:
    """Write the provider batch's intent (state `creating`) and move up to `limit` pending
    items of `deployment` into it; None when no item was free. Committed before the create."""
    picked = [
        r
        for r in session.execute(
            select(_items.c.job_id, _items.c.attempt_no)
            .where(_items.c.deployment == deployment, _items.c.state == "pending")
            .order_by(_items.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ]
    if not picked:
        return None
    batch_id = uuid.uuid4()
    session.execute(
        _pb.insert().values(
            id=batch_id,
            deployment=deployment,
            provider="",
            state="creating",
            items=len(picked),
            created_at=now,
        )
    )
    for job_id, attempt_no in picked:
        session.execute(
            update(_items)
            .where(_items.c.job_id == job_id, _items.c.attempt_no == attempt_no)
            .values(provider_batch=batch_id, state="sent")
        )
    return batch_id


def set_provider(session: Session, batch_id: uuid.UUID, provider: str) -> None:
    session.execute(update(_pb).where(_pb.c.id == batch_id).values(provider=provider))


def give_back(session: Session, batch_id: uuid.UUID, custom_ids: list[str]) -> None:
    """Items that do not fit the provider's size limit go back to pending (the next batch)."""
    session.execute(
        update(_items)
        .where(_items.c.provider_batch == batch_id, _items.c.custom_id.in_(custom_ids))
        .values(provider_batch=None, state="pending")
    )
    session.execute(
        update(_pb).where(_pb.c.id == batch_id).values(items=_pb.c["items"] - len(custom_ids))
    )


def mark_submitted(session: Session, batch_id: uuid.UUID, external_id: str, now: datetime) -> None:
    """The provider accepted the batch: its id on the row and on every item's attempt."""
    session.execute(
        update(_pb)
        .where(_pb.c.id == batch_id)
        .values(external_id=external_id, state="open", submitted_at=now, polled_at=now)
    )
    keys = select(_items.c.job_id, _items.c.attempt_no).where(_items.c.provider_batch == batch_id)
    for job_id, attempt_no in session.execute(keys).all():
        session.execute(
            update(_attempts)
            .where(_attempts.c.job_id == job_id, _attempts.c.attempt_no == attempt_no)
            .values(provider_batch_id=external_id[:200])
        )


def known_external_ids(session: Session) -> set[str]:
    """Every provider batch id the ledger has recorded (any deployment: several deployments
    may share one provider account, and a recorded batch is never adopted again)."""
    rows = session.execute(select(_pb.c.external_id).where(_pb.c.external_id.is_not(None)))
    return {r[0] for r in rows}


def _batch_row(r: Any) -> BatchRow:
    return BatchRow(r.id, r.deployment, r.provider, r.external_id, r.state, r.items, r.created_at)


def batches_in(session: Session, states: tuple[str, ...]) -> list[BatchRow]:
    """Provider batches in `states`, oldest first, with their items' earliest deadline."""
    earliest = (
        select(func.min(_items.c.deadline))
        .where(_items.c.provider_batch == _pb.c.id, _items.c.state == "sent")
        .scalar_subquery()
    )
    rows = session.execute(
        select(_pb, earliest.label("earliest"))
        .where(_pb.c.state.in_(states))
        .order_by(_pb.c.created_at)
    )
    return [
        BatchRow(
            r.id,
            r.deployment,
            r.provider,
            r.external_id,
            r.state,
            r.items,
            r.created_at,
            r.earliest,
        )
        for r in rows
    ]


def set_state(
    session: Session, batch_id: uuid.UUID, state: str, status: str | None, now: datetime
) -> None:
    values: dict[str, Any] = {"state": state, "polled_at": now}
    if status is not None:
        values["provider_status"] = status[:40]
    if state == "done":
        values["ended_at"] = now
    session.execute(update(_pb).where(_pb.c.id == batch_id).values(**values))


def items_of(session: Session, batch_id: uuid.UUID, only_open: bool = True) -> list[ItemRow]:
    """The batch's items still waiting for a result (all of them with `only_open` False)."""
    cond = [_items.c.provider_batch == batch_id]
    if only_open:
        cond.append(_items.c.state == "sent")
    stmt = (
        select(
            _items.c.custom_id, _items.c.deadline, _items.c.deployment, _items.c.attempt_no,
            _jobs.c.id, _jobs.c.batch_id, _jobs.c.tenant, _jobs.c.model, _jobs.c.spec,
            _jobs.c.routing_state, _jobs.c.custom_id.label("job_custom_id"),
            _attempts.c.model.label("attempt_model"), _attempts.c.started_at,
            _attempts.c.reserved_tokens, _attempts.c.reserved_usd,
            select(_batches.c.max_cost_usd).where(_batches.c.id == _jobs.c.batch_id)
            .scalar_subquery().label("max_cost_usd"),
        )
        .join(_jobs, _jobs.c.id == _items.c.job_id)
        .join(
            _attempts,
            and_(_attempts.c.job_id == _items.c.job_id, _attempts.c.attempt_no == _items.c.attempt_no),
        )
        .where(*cond)
    )  # fmt: skip
    out = []
    for r in session.execute(stmt):
        claim = ClaimedJob(
            id=r.id, batch_id=r.batch_id, tenant=r.tenant, model=r.model, spec=r.spec or {},
            attempt_no=r.attempt_no, routing_state=dict(r.routing_state or {}),
            batch_max_cost=r.max_cost_usd, custom_id=r.job_custom_id,
        )  # fmt: skip
        out.append(
            ItemRow(
                claim, r.custom_id, r.deadline, r.deployment, r.attempt_model, r.started_at,
                int(r.reserved_tokens or 0), Decimal(r.reserved_usd or 0),
            )
        )  # fmt: skip
    return out


def take_back(session: Session, claim: ClaimedJob, now: datetime) -> bool:
    """batched -> running for applying this item's outcome (fenced: False = the job moved
    on, or the outcome was applied already); the item is marked done either way."""
    session.execute(
        update(_items)
        .where(_items.c.job_id == claim.id, _items.c.attempt_no == claim.attempt_no)
        .values(state="done")
    )
    return (
        session.execute(
            update(_jobs)
            .where(
                _jobs.c.id == claim.id,
                _jobs.c.attempts == claim.attempt_no,
                _jobs.c.state == JobState.BATCHED.value,
            )
            .values(
                state=JobState.RUNNING.value, lease_until=now + timedelta(seconds=APPLY_LEASE_S)
            )
        ).rowcount
        == 1
    )


def note_sync_cost(session: Session, claim: ClaimedJob, sync_cost: Decimal | None) -> None:
    """What the attempt would have cost on the sync lane (the saving is sync_cost - cost)."""
    session.execute(
        update(_attempts)
        .where(
            _attempts.c.job_id == claim.id,
            _attempts.c.attempt_no == claim.attempt_no,
            _attempts.c.outcome != AttemptOutcome.STARTED.value,
        )
        .values(sync_cost_usd=sync_cost)
    )
