"""The Spend page's figures: cost and tokens per UTC day by provider or model, with a memo of
days that can no longer change.

Owns: `SpendMemo` and `spend_cells`. A day that ended more than 24 hours ago is frozen: no
attempt runs that long (leases, timeouts), so its attempts' costs are final, and its cells are
read once per process and kept; the last two days are read live on every request. On a ledger
of 1M attempts this keeps the page to a range scan of about two days of attempts (the BRIN
index). Must not: write anything, or keep anything but aggregate figures (no tenant sees
another's cells: the memo is keyed by the tenant filter).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session, sessionmaker

from core.ledger.db import session_scope
from core.ledger.spend_reads_repo import SpendCell, spend_by_day

MAX_KEYS = 256  # (tenant filter, dimension) pairs kept; the memo is cleared beyond that


def _at(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass
class _Span:
    lo: date  # first frozen day read
    hi: date  # day after the last frozen day read
    cells: list[SpendCell] = field(default_factory=list)


class SpendMemo:
    """Frozen days' cells per (tenant or None, dimension); thread-safe."""

    def __init__(self) -> None:
        self._spans: dict[tuple[str | None, str], _Span] = {}
        self._lock = threading.Lock()

    def seed(
        self, tenant: str | None, dim: str, lo: date, hi: date, cells: list[SpendCell]
    ) -> bool:
        """Keep `cells`, the whole of the frozen days [lo, hi), for a key no request has read
        yet (the warm-up's; a key already read keeps its own span). True if kept."""
        with self._lock:
            if (tenant, dim) in self._spans or len(self._spans) >= MAX_KEYS:
                return False
            self._spans[(tenant, dim)] = _Span(lo, hi, list(cells))
            return True

    def frozen(
        self,
        sessions: sessionmaker[Session],
        tenant: str | None,
        dim: str,
        start: date,
        end: date,
    ) -> list[SpendCell]:
        """Cells of the frozen days in [start, end), reading only days not read before."""
        if start >= end:
            return []
        key = (tenant, dim)
        with self._lock:
            span = self._spans.get(key)
            if span is None:
                if len(self._spans) >= MAX_KEYS:
                    self._spans.clear()
                span = self._spans[key] = _Span(start, start)
            missing = []
            if start < span.lo:
                missing.append((start, span.lo))
            if span.hi < end:
                missing.append((max(span.hi, span.lo), end))
            for lo, hi in missing:
                with session_scope(sessions) as session:
                    span.cells += spend_by_day(session, _at(lo), _at(hi), dim, tenant)
            span.lo, span.hi = min(span.lo, start), max(span.hi, end)
            return [c for c in span.cells if start <= c.day < end]


def frozen_range(days: int, now: datetime) -> tuple[date, date]:
    """[first, live_from): the days of a `days`-day view that `spend_cells` takes from the memo."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    return first, max(first, today - timedelta(days=1))


def spend_cells(
    memo: SpendMemo,
    sessions: sessionmaker[Session],
    tenant: str | None,
    dim: str,
    days: int,
    now: datetime,
) -> tuple[list[date], list[SpendCell]]:
    """(the `days` UTC days ending today, their cells): frozen days from the memo, the last
    two read now."""
    today = now.astimezone(UTC).date()
    first, live_from = frozen_range(days, now)
    cells = memo.frozen(sessions, tenant, dim, first, live_from)
    with session_scope(sessions) as session:
        cells += spend_by_day(session, _at(live_from), _at(today + timedelta(days=1)), dim, tenant)
    return [first + timedelta(days=i) for i in range(days)], cells
