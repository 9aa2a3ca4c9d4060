"""Quota windows: the UTC day and month budgets are counted in, and when they reset.

Owns: `PERIODS`, `windows`, `window_end`, `next_reset`. Pure functions of their arguments (the
clock is passed in as `now`). Must not: touch the database, Redis, the clock or any provider.
Reserving and settling live in `core.ledger.quota_repo`; the worst case of a call (what a
reservation holds) in `workers.quota`; USD rounding in `core.money`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

PERIODS = ("day", "month")


def _utc(now: datetime) -> datetime:
    # A naive timestamp is read as UTC: SQLite hands back naive datetimes for what we stored as UTC.
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def windows(now: datetime) -> dict[str, date]:
    """The budget windows `now` falls in: {"day": the UTC date, "month": its first day}."""
    day = _utc(now).date()
    return {"day": day, "month": day.replace(day=1)}


def window_end(period: str, start: date) -> datetime:
    """When the window of `period` ('day' or 'month') that starts on `start` ends (UTC)."""
    if period == "day":
        end = start + timedelta(days=1)
    elif period == "month":
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    else:
        raise ValueError(f"period {period!r} has no end (expected 'day' or 'month')")
    return datetime.combine(end, time(0), tzinfo=UTC)


def next_reset(now: datetime) -> datetime:
    """The next UTC midnight: the earliest moment any tenant window resets.

    A job parked for quota may try again then; if it was the month that was full, it is
    simply parked again until the month turns.
    """
    return window_end("day", windows(now)["day"])
