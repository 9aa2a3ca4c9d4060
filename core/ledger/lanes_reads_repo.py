"""Read models of provider batch lanes (issue 18): attempts, cost and saving per lane, open
provider batches per deployment, and an attempt's provider batch.

Owns: `lane_usage` (per lane: attempts, successes, cost, what the batch lane's calls would have
cost on the sync lane, and the USD saved), `open_batches` (per deployment: open provider
batches and the oldest one's creation time, for `llmq_provider_batches_open` and
`llmq_provider_batch_oldest_age_seconds`). Must not: write anything, or open transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ledger.models import Attempt, ProviderBatch
from core.money import as_decimal, money_str

OPEN_STATES = ("creating", "open", "cancelling")


@dataclass(frozen=True)
class LaneFigures:
    lane: str  # sync | batch
    attempts: int
    succeeded: int
    cost_usd: Decimal
    sync_cost_usd: Decimal  # batch lane: the same calls at the sync price
    saved_usd: Decimal  # sync_cost_usd - cost_usd (batch lane only)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "succeeded": self.succeeded,
            "cost_usd": money_str(self.cost_usd),
            "saved_usd": money_str(self.saved_usd),
        }


def lane_usage(session: Session, *where: Any) -> dict[str, LaneFigures]:
    """Per lane, over the attempts matching `where` (e.g. a batch, a tenant, a time)."""
    a = Attempt
    lane = func.coalesce(a.lane, "sync")
    stmt = (
        select(
            lane,
            func.count(),
            func.count().filter(a.outcome == "succeeded"),
            func.coalesce(func.sum(a.cost_usd), 0),
            func.coalesce(func.sum(a.sync_cost_usd), 0),
            func.coalesce(func.sum(a.cost_usd).filter(a.sync_cost_usd.is_not(None)), 0),
        )
        .where(*where)
        .group_by(lane)
    )
    out = {}
    for name, n, ok, cost, sync, priced in session.execute(stmt):
        sync_d, priced_d = as_decimal(sync or 0), as_decimal(priced or 0)
        saved = sync_d - priced_d if name == "batch" else Decimal(0)
        out[str(name)] = LaneFigures(
            str(name), int(n), int(ok), as_decimal(cost or 0), sync_d, saved
        )
    return out


def lanes_json(figures: dict[str, LaneFigures]) -> dict[str, Any]:
    """{"sync": {...}, "batch": {...}, "saved_usd": "..."} (both lanes, zeros included)."""
    zero = LaneFigures("", 0, 0, Decimal(0), Decimal(0), Decimal(0))
    out: dict[str, Any] = {k: figures.get(k, zero).to_json() for k in ("sync", "batch")}
    out["saved_usd"] = money_str(figures.get("batch", zero).saved_usd)
    return out


def open_batches(session: Session) -> dict[str, tuple[int, datetime]]:
    """deployment -> (open provider batches, the oldest one's creation time)."""
    pb = ProviderBatch
    stmt = (
        select(pb.deployment, func.count(), func.min(pb.created_at))
        .where(pb.state.in_(OPEN_STATES))
        .group_by(pb.deployment)
    )
    return {d: (int(n), oldest) for d, n, oldest in session.execute(stmt)}
