"""The reads behind `llmq quota show` and the quota metrics: each window's limits, spend,
reservations and headroom (`llmq usage` reads the attempts ledger instead: usage_repo.py).

Owns: `WindowReport` and `quota_report`. Read-only. Must not: write anything (`quota_repo` and
`quota_limits_repo` do), or read the clock (callers pass `now`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.ledger.budget_window_rows import (
    ZERO,
    batch_scope,
    find_ids,
    load_rows,
    tenant_keys,
    tenant_scope,
)
from core.ledger.models import Batch, BudgetWindow, QuotaLimit
from core.ledger.quota_limits_repo import get_limits
from core.quota import window_end, windows
from schemas.job import BatchState


@dataclass(frozen=True)
class WindowReport:
    """One budget window as `quota show` prints it. Money in USD, tokens in tokens."""

    tenant: str
    scope: str
    period: str  # day | month | batch
    window_start: date
    resets_at: datetime | None  # None for a batch window
    limit_usd: Decimal | None
    limit_tokens: int | None
    used_usd: Decimal = ZERO
    used_tokens: int = 0
    reserved_usd: Decimal = ZERO
    reserved_tokens: int = 0

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.limit_usd is None:
            return None
        return max(self.limit_usd - self.used_usd - self.reserved_usd, ZERO)

    @property
    def remaining_tokens(self) -> int | None:
        if self.limit_tokens is None:
            return None
        return max(self.limit_tokens - self.used_tokens - self.reserved_tokens, 0)


def _window_report(tenant: str, w: BudgetWindow) -> WindowReport:
    resets = None if w.period == "batch" else window_end(w.period, w.window_start)
    return WindowReport(
        tenant, w.scope, w.period, w.window_start, resets, w.limit_usd, w.limit_tokens,
        w.spent_usd, w.spent_tokens, w.reserved_usd, w.reserved_tokens,
    )  # fmt: skip


def _known_tenants(session: Session, starts: Mapping[str, date]) -> list[str]:
    limited = set(session.execute(select(QuotaLimit.tenant).distinct()).scalars())
    current = or_(
        *(and_(BudgetWindow.period == p, BudgetWindow.window_start == d) for p, d in starts.items())
    )
    scopes = session.execute(
        select(BudgetWindow.scope).where(BudgetWindow.scope.startswith("tenant:"), current)
    ).scalars()
    return sorted(limited | {s.removeprefix("tenant:") for s in scopes})


def quota_report(session: Session, tenant: str | None, now: datetime) -> list[WindowReport]:
    """The current day and month windows of one tenant (or of every known tenant), and the
    windows of their active batches that have a max cost. A window nobody has used yet is
    shown with its configured limits and nothing spent."""
    starts = windows(now)
    tenants = [tenant] if tenant is not None else _known_tenants(session, starts)
    out: list[WindowReport] = []
    for t in tenants:
        keys = tenant_keys(t, now)
        rows = {w.period: w for w in load_rows(session, find_ids(session, keys).values())}
        limits = get_limits(session, t)
        for _, period, start in keys:
            if period in rows:
                out.append(_window_report(t, rows[period]))
            else:
                end = window_end(period, start)
                out.append(WindowReport(t, tenant_scope(t), period, start, end, *limits[period]))
        out.extend(_batch_reports(session, t))
    return out


def _batch_reports(session: Session, tenant: str) -> list[WindowReport]:
    active = session.execute(
        select(Batch.id).where(Batch.tenant == tenant, Batch.state == BatchState.ACTIVE.value)
    ).scalars()
    scopes = [batch_scope(b) for b in active]
    if not scopes:
        return []
    ids = session.execute(select(BudgetWindow.id).where(BudgetWindow.scope.in_(scopes))).scalars()
    return [_window_report(tenant, w) for w in load_rows(session, ids)]
