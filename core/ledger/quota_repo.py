"""Budget windows in the ledger: reserve before a call, settle or release after, and the reads
behind `llmq quota show` (`llmq usage` reads the attempts ledger: usage_repo.py).

Owns: every write to `budget_windows` and `quota_limits`. Each function works inside the
caller's open transaction and never commits. Must not: decide anything about routing or
pricing (the worst case comes from `core.quota`), or read the clock (callers pass `now`).

Why overshoot is impossible: `reserve` adds the worst case to every applicable window in ONE
conditional UPDATE whose WHERE clause re-checks `spent + reserved + worst <= limit` on each row.
Postgres re-evaluates that clause on the newest row version after waiting for a concurrent
writer, and SQLite runs one writer at a time, so two racing reservations can never both see the
same free room. If fewer rows matched than exist, the rows that did match are put back in the
same transaction and the reservation is refused. Rows are locked in id order first (Postgres),
so transactions that touch several windows never deadlock each other.

Windows: `tenant:<t>` per UTC day and month, and `batch:<uuid>` (period "batch", one window for
the life of the batch) when the batch has a max cost. A window row copies the tenant's limits
when it is created (no limits = NULL limits, spend still counted). Settling and releasing use
the windows of the attempt's `started_at`, so a call that crosses midnight settles where it
reserved: callers must pass the same timestamp to `reserve(now=...)` and `attempts.started_at`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID
from weakref import WeakKeyDictionary

from sqlalchemy import BigInteger, Engine, and_, bindparam, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.ledger.models import Batch, BudgetWindow, QuotaLimit
from core.quota import PERIODS, window_end, windows
from core.quota import next_reset as next_reset  # re-exported: part of this module's contract
from schemas.job import BatchState

BATCH_WINDOW_START = date(1970, 1, 1)  # a batch has one window for its whole life
ZERO = Decimal(0)
NO_USE = {"spent_usd": ZERO, "spent_tokens": 0, "reserved_usd": ZERO, "reserved_tokens": 0}

Key = tuple[str, str, date]  # (scope, period, window_start): the window's unique key
Limits = tuple[Decimal | None, int | None]  # (limit_usd, limit_tokens); None = unlimited


def tenant_scope(tenant: str) -> str:
    return f"tenant:{tenant}"


def batch_scope(batch_id: UUID) -> str:
    return f"batch:{batch_id}"


def _tenant_keys(tenant: str, at: datetime) -> list[Key]:
    starts = windows(at)
    return [(tenant_scope(tenant), p, starts[p]) for p in PERIODS]


def _batch_key(batch_id: UUID) -> Key:
    return (batch_scope(batch_id), "batch", BATCH_WINDOW_START)


# ---- window rows -------------------------------------------------------------------------


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# Window row ids per engine, by key. Safe to keep for the life of the process: window rows are
# never deleted (`quota set` changes limits on the row itself), and a statement that finds
# fewer rows than ids it was given drops the engine's cache and redoes the missing part.
_ID_CACHE: WeakKeyDictionary[Engine, dict[Key, int]] = WeakKeyDictionary()
_CACHE_MAX = 50_000  # one entry per tenant-day/month and per capped batch; bounded anyway


def _cache(session: Session) -> dict[Key, int]:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    cache = _ID_CACHE.get(engine)
    if cache is None or len(cache) > _CACHE_MAX:
        cache = _ID_CACHE[engine] = {}
    return cache


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
_PG_ADD = text("""
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


def _find_ids(session: Session, keys: Sequence[Key]) -> dict[Key, int]:
    bw = BudgetWindow
    match = or_(*(and_(bw.scope == s, bw.period == p, bw.window_start == d) for s, p, d in keys))
    rows = session.execute(select(bw.id, bw.scope, bw.period, bw.window_start).where(match))
    return {(r.scope, r.period, r.window_start): r.id for r in rows}


def _ensure(
    session: Session, keys: Sequence[Key], limits_of: Callable[[], Mapping[Key, Limits]]
) -> list[int]:
    """Ids of the window rows for `keys`, creating the missing ones with the given limits.

    ON CONFLICT DO NOTHING makes concurrent creators harmless: the loser waits for the winner's
    row and then simply finds it.
    """
    # Postgres caches ids per process (see _ID_CACHE); SQLite looks them up every time.
    cache = _cache(session) if _is_postgres(session) else {}
    if all(k in cache for k in keys):
        return sorted(cache[k] for k in keys)
    found = _find_ids(session, keys)
    missing = [k for k in keys if k not in found]
    if missing:
        limits = limits_of()
        rows = [
            dict(scope=s, period=p, window_start=d, **NO_USE,
                 limit_usd=limits[(s, p, d)][0], limit_tokens=limits[(s, p, d)][1])
            for s, p, d in sorted(missing)  # one order for everyone: no insert deadlocks
        ]  # fmt: skip
        insert = pg_insert if _is_postgres(session) else sqlite_insert
        stmt = insert(BudgetWindow).values(rows)
        session.execute(
            stmt.on_conflict_do_nothing(index_elements=["scope", "period", "window_start"])
        )
        found = _find_ids(session, keys)
    cache.update((k, found[k]) for k in keys)
    return sorted(found[k] for k in keys)


def get_limits(session: Session, tenant: str) -> dict[str, Limits]:
    """The tenant's configured limits by period ('day', 'month'); a missing period is unlimited."""
    rows = session.execute(select(QuotaLimit).where(QuotaLimit.tenant == tenant)).scalars()
    found = {r.period: (r.limit_usd, r.limit_tokens) for r in rows}
    return {p: found.get(p, (None, None)) for p in PERIODS}


def _tenant_ids(session: Session, tenant: str, at: datetime) -> list[int]:
    keys = _tenant_keys(tenant, at)

    def limits_of() -> dict[Key, Limits]:
        limits = get_limits(session, tenant)
        return {k: limits[k[1]] for k in keys}

    return _ensure(session, keys, limits_of)


def _load(session: Session, ids: Iterable[int]) -> list[BudgetWindow]:
    """Window rows by id, fresh from the database: the UPDATEs here bypass the ORM, so any
    copies already in the session's identity map may be stale."""
    stmt = select(BudgetWindow).where(BudgetWindow.id.in_(list(ids))).order_by(BudgetWindow.id)
    return list(session.execute(stmt.execution_options(populate_existing=True)).scalars())


def _lock(session: Session, ids: Sequence[int]) -> None:
    """Lock the rows in id order before a multi-row UPDATE (Postgres; SQLite has one writer)."""
    if _is_postgres(session):
        stmt = select(BudgetWindow.id).where(BudgetWindow.id.in_(ids)).order_by(BudgetWindow.id)
        session.execute(stmt.with_for_update())


def _add(
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


def _known_ids(session: Session, keys: Sequence[Key]) -> list[int]:
    """Ids of the existing window rows for `keys` (Postgres: from the cache when all known)."""
    cache = _cache(session)
    if not all(k in cache for k in keys):
        found = _find_ids(session, keys)
        cache.update(found)
        return sorted(found.values())
    return sorted(cache[k] for k in keys)


def _pg_add(
    session: Session,
    ids: Sequence[int],
    batch_id: UUID | None,
    reserved: tuple[int, Decimal],
    spent: tuple[int, Decimal],
) -> bool:
    """Postgres: reserved += reserved, spent += spent on the rows `ids` and on the batch's
    window if it exists, in one statement. False if some id no longer has a row: then those
    ids got nothing and the others are done (a retry passes only the stale part again)."""
    scope, _, start = _batch_key(batch_id) if batch_id is not None else (None, None, None)
    params = {
        "ids": list(ids), "bscope": scope, "bstart": start,
        "rt": reserved[0], "ru": reserved[1], "st": spent[0], "su": spent[1],
    }  # fmt: skip
    done = set(session.connection().execute(_PG_ADD, params).scalars())
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
        tokens: worst-case tokens (prompt bound + max_tokens), from `core.quota.worst_case`.
        usd: worst-case cost (USD).
        now: the attempt's start; store the same value in `attempts.started_at`.

    Returns:
        True if reserved. False if any window lacks room; then nothing stays reserved and the
        caller's transaction is still usable (e.g. to try a cheaper deployment).
    """

    def window_ids() -> list[int]:
        ids = _tenant_ids(session, tenant, now)
        if batch_max_cost is not None:
            key = _batch_key(batch_id)
            ids += _ensure(session, [key], lambda: {key: (batch_max_cost, None)})
        return sorted(ids)

    ids = window_ids()
    if _is_postgres(session):
        params = {"ids": ids, "n": len(ids), "usd": usd, "tokens": tokens}
        row = session.connection().execute(_PG_RESERVE, params).one()
        if row.found < len(ids):  # a cached id is gone (e.g. its creating txn rolled back)
            _cache(session).clear()
            params["ids"] = ids = window_ids()
            row = session.connection().execute(_PG_RESERVE, params).one()
        return row.updated == len(ids)
    _lock(session, ids)
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
    _add(session, matched, reserved=(-tokens, -usd), spent=(0, ZERO))
    return False


def _existing_ids(session: Session, tenant: str, batch_id: UUID, at: datetime) -> list[int]:
    return sorted(_find_ids(session, [*_tenant_keys(tenant, at), _batch_key(batch_id)]).values())


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
    if _is_postgres(session):
        tenant_ids = _tenant_ids(session, tenant, started_at)
        if not _pg_add(session, tenant_ids, batch_id, *amounts):
            _cache(session).clear()  # a cached id is gone: add to the re-created rows
            _pg_add(session, _tenant_ids(session, tenant, started_at), None, *amounts)
        return
    tenant_ids = _tenant_ids(session, tenant, started_at)
    batch = _find_ids(session, [_batch_key(batch_id)])
    ids = sorted([*tenant_ids, *batch.values()])
    _lock(session, ids)
    _add(session, ids, reserved=(-reserved_tokens, -reserved_usd), spent=(actual_tokens, booked))


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
    if _is_postgres(session):
        keys = _tenant_keys(tenant, started_at)
        if not _pg_add(session, _known_ids(session, keys), batch_id, *amounts):
            _cache(session).clear()
            _pg_add(session, _known_ids(session, keys), None, *amounts)
        return
    ids = _existing_ids(session, tenant, batch_id, started_at)
    _lock(session, ids)
    _add(session, ids, reserved=(-reserved_tokens, -reserved_usd), spent=(0, ZERO))


def explain_refusal(
    session: Session, tenant: str, batch_id: UUID, tokens: int, usd: Decimal, now: datetime
) -> str:
    """A sentence naming the window(s) a reservation of (tokens, usd) does not fit right now."""
    keys = [*_tenant_keys(tenant, now), _batch_key(batch_id)]
    full: list[str] = []
    for w in _load(session, _find_ids(session, keys).values()):
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


# ---- limits ---------------------------------------------------------------------------


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
    insert = pg_insert if _is_postgres(session) else sqlite_insert
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


# ---- reads: `llmq quota show` -----------------------------------------------------------


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


def _report(tenant: str, w: BudgetWindow) -> WindowReport:
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
        keys = _tenant_keys(t, now)
        rows = {w.period: w for w in _load(session, _find_ids(session, keys).values())}
        limits = get_limits(session, t)
        for _, period, start in keys:
            if period in rows:
                out.append(_report(t, rows[period]))
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
    return [_report(tenant, w) for w in _load(session, ids)]
