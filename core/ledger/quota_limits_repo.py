"""A tenant's quota limits: read them, and set them (`llmq quota set`, the nightly budget).

Owns: every write to `quota_limits`, and applying a new limit to the tenant's current window in
`budget_windows`. Works inside the caller's open transaction and never commits. Must not:
change any window's spent or reserved amounts (`quota_repo` does), or read the clock (callers
pass `now`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.ledger.budget_window_rows import NO_USE, Limits, is_postgres, tenant_scope
from core.ledger.models import BudgetWindow, QuotaLimit
from core.quota import PERIODS, windows


def get_limits(session: Session, tenant: str) -> dict[str, Limits]:
    """The tenant's configured limits by period ('day', 'month'); a missing period is unlimited."""
    rows = session.execute(select(QuotaLimit).where(QuotaLimit.tenant == tenant)).scalars()
    found = {r.period: (r.limit_usd, r.limit_tokens) for r in rows}
    return {p: found.get(p, (None, None)) for p in PERIODS}


def set_limits(
    session: Session,
    tenant: str,
    period: str,
    limit_usd: Decimal | None,
    limit_tokens: int | None,
    now: datetime,
) -> None:
    """Set a tenant's limit for 'day' or 'month' and apply it to the current window at once.

    The current window is upserted (not just updated), so a reservation creating that row
    concurrently either sees the new limit or has its row updated right after it commits.
    """
    if period not in PERIODS:
        raise ValueError(f"period {period!r}: expected one of {PERIODS}")
    insert = pg_insert if is_postgres(session) else sqlite_insert
    limits = {"limit_usd": limit_usd, "limit_tokens": limit_tokens}
    stmt = insert(QuotaLimit).values(tenant=tenant, period=period, updated_at=now, **limits)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant", "period"], set_={**limits, "updated_at": now}
        )
    )
    window = {"scope": tenant_scope(tenant), "period": period, "window_start": windows(now)[period]}
    stmt = insert(BudgetWindow).values(**window, **limits, **NO_USE)
    session.execute(
        stmt.on_conflict_do_update(index_elements=["scope", "period", "window_start"], set_=limits)
    )
