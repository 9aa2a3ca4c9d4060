"""Finding and creating `budget_windows` rows: their keys, and a per-process cache of their ids.

Owns: the window key `(scope, period, window_start)` and its scope names (`tenant:<t>`,
`batch:<uuid>`), creating missing rows (INSERT ... ON CONFLICT DO NOTHING), the id cache, and
loading rows fresh. Shared by the quota repos (`quota_repo` reserves and settles,
`quota_limits_repo` edits limits, `quota_report_repo` reads). Must not: change any amount or
limit on an existing row, commit, or read the clock (callers pass `now`).

Windows: `tenant:<t>` per UTC day and month, and `batch:<uuid>` (period "batch", one window for
the life of the batch) when the batch has a max cost. A window row copies the tenant's limits
when it is created (no limits = NULL limits, spend still counted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.ledger.models import BudgetWindow
from core.quota import PERIODS, windows

BATCH_WINDOW_START = date(1970, 1, 1)  # a batch has one window for its whole life
ZERO = Decimal(0)
NO_USE = {"spent_usd": ZERO, "spent_tokens": 0, "reserved_usd": ZERO, "reserved_tokens": 0}

WindowKey = tuple[str, str, date]  # (scope, period, window_start): the window's unique key
Limits = tuple[Decimal | None, int | None]  # (limit_usd, limit_tokens); None = unlimited


def tenant_scope(tenant: str) -> str:
    return f"tenant:{tenant}"


def batch_scope(batch_id: UUID) -> str:
    return f"batch:{batch_id}"


def tenant_keys(tenant: str, at: datetime) -> list[WindowKey]:
    """The keys of the tenant's day and month windows that `at` falls in."""
    starts = windows(at)
    return [(tenant_scope(tenant), p, starts[p]) for p in PERIODS]


def batch_key(batch_id: UUID) -> WindowKey:
    return (batch_scope(batch_id), "batch", BATCH_WINDOW_START)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# Window row ids per engine, by key. Safe to keep for the life of the process: window rows are
# never deleted (`quota set` changes limits on the row itself), and a statement that finds
# fewer rows than ids it was given drops the engine's cache and redoes the missing part.
_ID_CACHE: WeakKeyDictionary[Engine, dict[WindowKey, int]] = WeakKeyDictionary()
_CACHE_MAX = 50_000  # one entry per tenant-day/month and per capped batch; bounded anyway


def id_cache(session: Session) -> dict[WindowKey, int]:
    """This engine's cached window ids (Postgres callers only; SQLite looks ids up each time)."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    cache = _ID_CACHE.get(engine)
    if cache is None or len(cache) > _CACHE_MAX:
        cache = _ID_CACHE[engine] = {}
    return cache


def find_ids(session: Session, keys: Sequence[WindowKey]) -> dict[WindowKey, int]:
    """Ids of the existing rows among `keys` (always read from the database)."""
    bw = BudgetWindow
    match = or_(*(and_(bw.scope == s, bw.period == p, bw.window_start == d) for s, p, d in keys))
    rows = session.execute(select(bw.id, bw.scope, bw.period, bw.window_start).where(match))
    return {(r.scope, r.period, r.window_start): r.id for r in rows}


def ensure_ids(
    session: Session,
    keys: Sequence[WindowKey],
    limits_of: Callable[[], Mapping[WindowKey, Limits]],
) -> list[int]:
    """Ids of the window rows for `keys`, creating the missing ones with the given limits.

    ON CONFLICT DO NOTHING makes concurrent creators harmless: the loser waits for the winner's
    row and then simply finds it.
    """
    # Postgres caches ids per process (see _ID_CACHE); SQLite looks them up every time.
    cache = id_cache(session) if is_postgres(session) else {}
    if all(k in cache for k in keys):
        return sorted(cache[k] for k in keys)
    found = find_ids(session, keys)
    missing = [k for k in keys if k not in found]
    if missing:
        limits = limits_of()
        rows = [
            dict(scope=s, period=p, window_start=d, **NO_USE,
                 limit_usd=limits[(s, p, d)][0], limit_tokens=limits[(s, p, d)][1])
            for s, p, d in sorted(missing)  # one order for everyone: no insert deadlocks
        ]  # fmt: skip
        insert = pg_insert if is_postgres(session) else sqlite_insert
        stmt = insert(BudgetWindow).values(rows)
        session.execute(
            stmt.on_conflict_do_nothing(index_elements=["scope", "period", "window_start"])
        )
        found = find_ids(session, keys)
    cache.update((k, found[k]) for k in keys)
    return sorted(found[k] for k in keys)


def known_ids(session: Session, keys: Sequence[WindowKey]) -> list[int]:
    """Ids of the existing window rows for `keys` (Postgres: from the cache when all known)."""
    cache = id_cache(session)
    if not all(k in cache for k in keys):
        found = find_ids(session, keys)
        cache.update(found)
        return sorted(found.values())
    return sorted(cache[k] for k in keys)


def load_rows(session: Session, ids: Iterable[int]) -> list[BudgetWindow]:
    """Window rows by id, fresh from the database: the quota UPDATEs bypass the ORM, so any
    copies already in the session's identity map may be stale."""
    stmt = select(BudgetWindow).where(BudgetWindow.id.in_(list(ids))).order_by(BudgetWindow.id)
    return list(session.execute(stmt.execution_options(populate_existing=True)).scalars())
