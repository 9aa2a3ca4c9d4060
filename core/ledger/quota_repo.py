"""Budget windows during a call: reserve before it, settle or release after, and say why a
reservation was refused.

Owns: every change to the spent and reserved amounts of `budget_windows`. Each function works
inside the caller's open transaction and never commits. Must not: decide anything about routing
or pricing (the worst case comes from `workers.quota`), edit limits (`quota_limits_repo`), or
read the clock (callers pass `now`). Window rows are found and created by `budget_window_rows`;
`llmq quota show` reads them through `quota_report_repo`.

Why overshoot is impossible: `reserve` adds the worst case to every applicable window in ONE
conditional UPDATE whose WHERE clause re-checks `spent + reserved + worst <= limit` on each row.
Postgres re-evaluates that clause on the newest row version after waiting for a concurrent
writer, and SQLite runs one writer at a time, so two racing reservations can never both see the
same free room. If fewer rows matched than exist, the rows that did match are put back in the
same transaction and the reservation is refused. Rows are locked in id order first (Postgres),
so transactions that touch several windows never deadlock each other.

Settling and releasing use the windows of the attempt's `started_at`, so a call that crosses
midnight settles where it reserved: callers must pass the same timestamp to `reserve(now=...)`
and `attempts.started_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import BigInteger, bindparam, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from core.ledger.budget_window_rows import (
    ZERO,
    Limits,
    WindowKey,
    batch_key,
    ensure_ids,
    find_ids,
    id_cache,
    is_postgres,
    known_ids,
    load_rows,
    tenant_keys,
)
from core.ledger.models import BudgetWindow
from core.ledger.quota_limits_repo import get_limits

# Re-exported for workers/pipeline.py, which parks a refused job until the next reset.
from core.quota import next_reset as next_reset

_IDS = bindparam("ids", type_=ARRAY(BigInteger))

# Postgres reserve, all-or-nothing in ONE statement: lock the rows in id order (the order that
# keeps multi-window transactions from deadlocking), check on the locked (newest) versions that
# every row is present and fits, and add the worst case only if all do.
_PG_RESERVE = text("""
WITH l AS (
    SELECT id,
           (limit_usd IS NULL OR spent_usd + reserved_usd + :usd <= limit_usd)
           AND (limit_tokens IS NULL OR spent_tokens + reserved_tokens + :tokens <= limit_tokens)
           AS fits
    FROM budget_windows WHERE id = ANY(:ids) ORDER BY id FOR UPDATE
), ok AS (
    SELECT count(*) = :n AND coalesce(bool_and(fits), false) AS ok FROM l
), u AS (
    UPDATE budget_windows b
    SET reserved_usd = b.reserved_usd + :usd, reserved_tokens = b.reserved_tokens + :tokens
    FROM l, ok WHERE b.id = l.id AND ok.ok
    RETURNING b.id
)
SELECT (SELECT count(*) FROM l) AS found, (SELECT count(*) FROM u) AS updated
""").bindparams(_IDS)

# Postgres settle/release in ONE statement: the rows by id plus the batch window by its key
# (it may not exist: a batch without a max cost has none), locked in id order, then adjusted.
_PG_ADD_AMOUNTS = text("""
WITH l AS (
    SELECT id FROM budget_windows
    WHERE id = ANY(:ids) OR (scope = :bscope AND period = 'batch' AND window_start = :bstart)
    ORDER BY id FOR UPDATE
)
UPDATE budget_windows b
SET reserved_tokens = b.reserved_tokens + :rt, reserved_usd = b.reserved_usd + :ru,
    spent_tokens = b.spent_tokens + :st, spent_usd = b.spent_usd + :su
FROM l WHERE b.id = l.id
RETURNING b.id
""").bindparams(_IDS)


def _tenant_ids(session: Session, tenant: str, at: datetime) -> list[int]:
    """Ids of the tenant's day and month windows at `at`, created with its limits if missing."""
    keys = tenant_keys(tenant, at)

    def limits_of() -> dict[WindowKey, Limits]:
        limits = get_limits(session, tenant)
        return {k: limits[k[1]] for k in keys}

    return ensure_ids(session, keys, limits_of)


def _lock_rows(session: Session, ids: Sequence[int]) -> None:
    """Lock the rows in id order before a multi-row UPDATE (Postgres; SQLite has one writer)."""
    if is_postgres(session):
        stmt = select(BudgetWindow.id).where(BudgetWindow.id.in_(ids)).order_by(BudgetWindow.id)
        session.execute(stmt.with_for_update())


def _add_amounts(
    session: Session, ids: Sequence[int], reserved: tuple[int, Decimal], spent: tuple[int, Decimal]
) -> None:
    """reserved += reserved, spent += spent on every row in `ids` (amounts may be negative)."""
    if not ids:
        return
    bw = BudgetWindow
    stmt = (
        update(bw)
        .where(bw.id.in_(ids))
        .values(
            reserved_tokens=bw.reserved_tokens + reserved[0],
            reserved_usd=bw.reserved_usd + reserved[1],
            spent_tokens=bw.spent_tokens + spent[0],
            spent_usd=bw.spent_usd + spent[1],
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(stmt)


def _pg_add_amounts(
    session: Session,
    ids: Sequence[int],
    batch_id: UUID | None,
    reserved: tuple[int, Decimal],
    spent: tuple[int, Decimal],
) -> bool:
    """Postgres: reserved += reserved, spent += spent on the rows `ids` and on the batch's
    window if it exists, in one statement. False if some id no longer has a row: then those
    ids got nothing and the others are done (a retry passes only the stale part again)."""
    scope, _, start = batch_key(batch_id) if batch_id is not None else (None, None, None)
    params = {
        "ids": list(ids), "bscope": scope, "bstart": start,
        "rt": reserved[0], "ru": reserved[1], "st": spent[0], "su": spent[1],
    }  # fmt: skip
    done = set(session.connection().execute(_PG_ADD_AMOUNTS, params).scalars())
    return done.issuperset(ids)


# ---- reserve / settle / release ---------------------------------------------------------


def reserve(
    session: Session,
    tenant: str,
    batch_id: UUID,
    batch_max_cost: Decimal | None,
    tokens: int,
    usd: Decimal,
    now: datetime,
) -> bool:
    """Reserve a call's worst case on the tenant's day and month windows, and on the batch's
    window when the batch has a max cost: all of them or none.

    Args:
        tokens: worst-case tokens (prompt bound + max_tokens), from `workers.quota.worst_case`.
        usd: worst-case cost (USD).
        now: the attempt's start; store the same value in `attempts.started_at`.

    Returns:
        True if reserved. False if any window lacks room; then nothing stays reserved and the
        caller's transaction is still usable (e.g. to try a cheaper deployment).
    """

    def window_ids() -> list[int]:
        ids = _tenant_ids(session, tenant, now)
        if batch_max_cost is not None:
            key = batch_key(batch_id)
            ids += ensure_ids(session, [key], lambda: {key: (batch_max_cost, None)})
        return sorted(ids)

    ids = window_ids()
    if is_postgres(session):
        params = {"ids": ids, "n": len(ids), "usd": usd, "tokens": tokens}
        row = session.connection().execute(_PG_RESERVE, params).one()
        if row.found < len(ids):  # a cached id is gone (e.g. its creating txn rolled back)
            id_cache(session).clear()
            params["ids"] = ids = window_ids()
            row = session.connection().execute(_PG_RESERVE, params).one()
        return row.updated == len(ids)
    _lock_rows(session, ids)
    bw = BudgetWindow
    stmt = (
        update(bw)
        .where(
            bw.id.in_(ids),
            or_(bw.limit_usd.is_(None), bw.spent_usd + bw.reserved_usd + usd <= bw.limit_usd),
            or_(
                bw.limit_tokens.is_(None),
                bw.spent_tokens + bw.reserved_tokens + tokens <= bw.limit_tokens,
            ),
        )
        .values(reserved_usd=bw.reserved_usd + usd, reserved_tokens=bw.reserved_tokens + tokens)
        .returning(bw.id)
        .execution_options(synchronize_session=False)
    )
    matched = list(session.execute(stmt).scalars())
    if len(matched) == len(ids):
        return True
    # Some window is full: take back what the UPDATE added to the others. These rows are
    # locked by this transaction until it ends, so nobody ever sees the partial reservation.
    _add_amounts(session, matched, reserved=(-tokens, -usd), spent=(0, ZERO))
    return False


def _existing_ids(session: Session, tenant: str, batch_id: UUID, at: datetime) -> list[int]:
    return sorted(find_ids(session, [*tenant_keys(tenant, at), batch_key(batch_id)]).values())


def settle(  # noqa: PLR0913 - the signature agreed in notes/contracts.md (issue #5)
    session: Session,
    tenant: str,
    batch_id: UUID,
    started_at: datetime,
    reserved_tokens: int,
    reserved_usd: Decimal,
    actual_tokens: int,
    actual_usd: Decimal | None,
) -> None:
    """Replace a reservation by the actual usage, in the caller's transaction.

    Args:
        started_at: the attempt's start (the `now` it reserved with): picks the windows.
        reserved_tokens, reserved_usd: exactly what `reserve` took (0, 0 if it took nothing).
        actual_tokens: prompt + completion tokens the provider reported.
        actual_usd: the call's cost; None when the price is unknown, in which case the
            reserved USD is booked as spent (money is never under-counted).
    """
    # The database rounds `spent + actual` to 8 places exactly as it rounds attempts.cost_usd,
    # and `spent` already has 8 places, so windows and the attempts ledger agree to the unit.
    booked = reserved_usd if actual_usd is None else actual_usd
    # Tenant windows are created if missing, so spend is counted even without a reservation.
    amounts = (-reserved_tokens, -reserved_usd), (actual_tokens, booked)
    if is_postgres(session):
        tenant_ids = _tenant_ids(session, tenant, started_at)
        if not _pg_add_amounts(session, tenant_ids, batch_id, *amounts):
            id_cache(session).clear()  # a cached id is gone: add to the re-created rows
            _pg_add_amounts(session, _tenant_ids(session, tenant, started_at), None, *amounts)
        return
    tenant_ids = _tenant_ids(session, tenant, started_at)
    batch = find_ids(session, [batch_key(batch_id)])
    ids = sorted([*tenant_ids, *batch.values()])
    _lock_rows(session, ids)
    _add_amounts(
        session, ids, reserved=(-reserved_tokens, -reserved_usd), spent=(actual_tokens, booked)
    )


def release(
    session: Session,
    tenant: str,
    batch_id: UUID,
    started_at: datetime,
    reserved_tokens: int,
    reserved_usd: Decimal,
) -> None:
    """Give back a reservation that was never used (call not made, or its worker died)."""
    amounts = (-reserved_tokens, -reserved_usd), (0, ZERO)
    if is_postgres(session):
        keys = tenant_keys(tenant, started_at)
        if not _pg_add_amounts(session, known_ids(session, keys), batch_id, *amounts):
            id_cache(session).clear()
            _pg_add_amounts(session, known_ids(session, keys), None, *amounts)
        return
    ids = _existing_ids(session, tenant, batch_id, started_at)
    _lock_rows(session, ids)
    _add_amounts(session, ids, reserved=(-reserved_tokens, -reserved_usd), spent=(0, ZERO))


def explain_refusal(
    session: Session, tenant: str, batch_id: UUID, tokens: int, usd: Decimal, now: datetime
) -> str:
    """A sentence naming the window(s) a reservation of (tokens, usd) does not fit right now."""
    keys = [*tenant_keys(tenant, now), batch_key(batch_id)]
    full: list[str] = []
    for w in load_rows(session, find_ids(session, keys).values()):
        if w.limit_usd is not None and w.spent_usd + w.reserved_usd + usd > w.limit_usd:
            full.append(
                f"{w.scope} {w.period} USD limit {w.limit_usd:f}: spent {w.spent_usd:f}, "
                f"reserved {w.reserved_usd:f}, this call needs up to {usd:f}"
            )
        if (
            w.limit_tokens is not None
            and w.spent_tokens + w.reserved_tokens + tokens > w.limit_tokens
        ):
            full.append(
                f"{w.scope} {w.period} token limit {w.limit_tokens}: spent {w.spent_tokens}, "
                f"reserved {w.reserved_tokens}, this call needs up to {tokens}"
            )
    return "; ".join(full) or "quota exceeded"
