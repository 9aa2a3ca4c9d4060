"""The quota repos (quota_repo, quota_limits_repo, quota_report_repo) on Postgres and SQLite: limits in USD and tokens, day and month
rollover, per-batch max cost, settle and release, limits changed on a live window."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.ledger.budget_window_rows import BATCH_WINDOW_START, batch_scope, tenant_scope
from core.ledger.db import session_scope
from core.ledger.models import BudgetWindow, QuotaLimit
from core.ledger.quota_limits_repo import get_limits, set_limits
from core.ledger.quota_repo import explain_refusal, release, reserve, settle
from core.ledger.quota_report_repo import quota_report

from .checks import seed_batch

T = "acme"
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
DAY, MONTH = date(2025, 3, 14), date(2025, 3, 1)
D = Decimal
Factory = sessionmaker[Session]


def window(factory: Factory, scope: str, period: str, start: date) -> BudgetWindow | None:
    with session_scope(factory) as s:
        stmt = select(BudgetWindow).where(
            BudgetWindow.scope == scope,
            BudgetWindow.period == period,
            BudgetWindow.window_start == start,
        )
        return s.execute(stmt).scalar_one_or_none()


def day(factory: Factory, start: date = DAY, tenant: str = T) -> BudgetWindow:
    w = window(factory, tenant_scope(tenant), "day", start)
    assert w is not None
    return w


def month(factory: Factory, start: date = MONTH, tenant: str = T) -> BudgetWindow:
    w = window(factory, tenant_scope(tenant), "month", start)
    assert w is not None
    return w


def used(w: BudgetWindow) -> tuple[Decimal, int, Decimal, int]:
    return (w.spent_usd, w.spent_tokens, w.reserved_usd, w.reserved_tokens)


def rsv(
    factory: Factory,
    tokens: int,
    usd: Decimal,
    now: datetime = NOW,
    batch: uuid.UUID | None = None,
    cap: Decimal | None = None,
) -> bool:
    with session_scope(factory) as s:
        return reserve(s, T, batch or uuid.uuid4(), cap, tokens, usd, now)


def limit(factory: Factory, period: str, usd: Decimal | None, tokens: int | None) -> None:
    with session_scope(factory) as s:
        set_limits(s, T, period, usd, tokens, NOW)


def test_without_limits_windows_still_count_spend(ledger: Factory) -> None:
    assert rsv(ledger, 100, D("0.5"))
    w = day(ledger)
    assert (w.limit_usd, w.limit_tokens) == (None, None)
    assert used(w) == (0, 0, D("0.5"), 100)
    with session_scope(ledger) as s:
        settle(s, T, uuid.uuid4(), NOW, 100, D("0.5"), 60, D("0.3"))
    assert used(day(ledger)) == used(month(ledger)) == (D("0.3"), 60, 0, 0)


def test_usd_limit_refuses_what_does_not_fit_and_leaves_nothing(ledger: Factory) -> None:
    limit(ledger, "day", D("1.00"), None)
    assert rsv(ledger, 10, D("0.40"))
    assert rsv(ledger, 10, D("0.40"))
    before = used(day(ledger)), used(month(ledger))
    assert not rsv(ledger, 10, D("0.21"))  # 0.80 + 0.21 > 1.00
    assert (used(day(ledger)), used(month(ledger))) == before  # nothing left behind
    assert rsv(ledger, 10, D("0.20"))  # exactly at the limit fits
    assert not rsv(ledger, 0, D("0.00000001"))


def test_token_limit(ledger: Factory) -> None:
    limit(ledger, "day", None, 1000)
    assert rsv(ledger, 600, D(0))
    assert not rsv(ledger, 401, D(0))
    assert rsv(ledger, 400, D(0))
    assert used(day(ledger)) == (0, 0, 0, 1000)
    with session_scope(ledger) as s:  # settling frees what the call did not use
        settle(s, T, uuid.uuid4(), NOW, 600, D(0), 250, D(0))
    assert rsv(ledger, 350, D(0))
    assert not rsv(ledger, 1, D(0))


def test_month_limit_binds_when_the_day_has_room(ledger: Factory) -> None:
    limit(ledger, "day", D("10"), None)
    limit(ledger, "month", D("1"), None)
    assert rsv(ledger, 1, D("0.9"))
    assert not rsv(ledger, 1, D("0.2"))
    assert used(day(ledger)) == (0, 0, D("0.9"), 1)  # the day row took nothing either
    with session_scope(ledger) as s:
        why = explain_refusal(s, T, uuid.uuid4(), 1, D("0.2"), NOW)
    assert "tenant:acme month USD limit 1.00000000" in why and "day" not in why


def test_day_rollover(ledger: Factory) -> None:
    limit(ledger, "day", D("1"), None)
    late = datetime(2025, 3, 14, 23, 59, 59, tzinfo=UTC)
    assert rsv(ledger, 1, D("1"), now=late)
    assert not rsv(ledger, 1, D("0.01"), now=late)
    assert rsv(ledger, 1, D("1"), now=late + timedelta(seconds=1))  # a new UTC day
    assert used(day(ledger, date(2025, 3, 15)))[2] == D("1")
    assert used(month(ledger))[2] == D("2")  # the month counts both days


def test_month_rollover(ledger: Factory) -> None:
    limit(ledger, "month", None, 1000)
    end = datetime(2025, 1, 31, 23, 0, tzinfo=UTC)
    assert rsv(ledger, 1000, D(0), now=end)
    assert not rsv(ledger, 1, D(0), now=end + timedelta(minutes=59))
    assert rsv(ledger, 1000, D(0), now=datetime(2025, 2, 1, 0, 0, tzinfo=UTC))
    assert used(month(ledger, date(2025, 2, 1)))[3] == 1000
    assert month(ledger, date(2025, 2, 1)).limit_tokens == 1000  # copied from quota_limits


def test_a_call_that_crosses_midnight_settles_where_it_reserved(ledger: Factory) -> None:
    started = datetime(2025, 3, 14, 23, 59, 59, tzinfo=UTC)
    b = uuid.uuid4()
    with session_scope(ledger) as s:
        assert reserve(s, T, b, None, 100, D("0.5"), started)
    # the reply arrives after midnight; settle by the attempt's started_at
    with session_scope(ledger) as s:
        settle(s, T, b, started, 100, D("0.5"), 80, D("0.4"))
    assert used(day(ledger)) == (D("0.4"), 80, 0, 0)
    assert window(ledger, tenant_scope(T), "day", date(2025, 3, 15)) is None


def test_batch_max_cost(ledger: Factory) -> None:
    with session_scope(ledger) as s:
        batch, _ = seed_batch(s, T, 3, max_cost_usd=D("0.10"))
    other = uuid.uuid4()
    assert rsv(ledger, 5, D("0.06"), batch=batch, cap=D("0.10"))
    assert not rsv(ledger, 5, D("0.06"), batch=batch, cap=D("0.10"))
    # the tenant windows matched but the batch did not: they were put back
    assert used(day(ledger)) == (0, 0, D("0.06"), 5)
    assert rsv(ledger, 5, D("0.06"), batch=other, cap=D("0.10"))  # another batch, own cap
    bw = window(ledger, batch_scope(batch), "batch", BATCH_WINDOW_START)
    assert bw is not None and bw.limit_usd == D("0.10") and bw.reserved_usd == D("0.06")
    with session_scope(ledger) as s:
        settle(s, T, batch, NOW, 5, D("0.06"), 5, D("0.05"))
    assert rsv(ledger, 5, D("0.05"), batch=batch, cap=D("0.10"))
    with session_scope(ledger) as s:
        shown = [w for w in quota_report(s, T, NOW) if w.period == "batch"]
    assert [(w.scope, w.used_usd, w.reserved_usd) for w in shown] == [
        (batch_scope(batch), D("0.05"), D("0.05"))  # only the batch that exists and is active
    ]


def test_release_gives_back_and_spends_nothing(ledger: Factory) -> None:
    limit(ledger, "day", D("1"), None)
    batch = uuid.uuid4()
    assert rsv(ledger, 300, D("0.7"), batch=batch, cap=D("5"))
    with session_scope(ledger) as s:
        release(s, T, batch, NOW, 300, D("0.7"))
    assert used(day(ledger)) == used(month(ledger)) == (0, 0, 0, 0)
    bw = window(ledger, batch_scope(batch), "batch", BATCH_WINDOW_START)
    assert bw is not None and used(bw) == (0, 0, 0, 0)
    assert rsv(ledger, 300, D("1"))


def test_unknown_price_books_the_reserved_usd(ledger: Factory) -> None:
    assert rsv(ledger, 100, D("0.25"))
    with session_scope(ledger) as s:
        settle(s, T, uuid.uuid4(), NOW, 100, D("0.25"), 70, None)
    assert used(day(ledger)) == (D("0.25"), 70, 0, 0)


def test_settle_without_a_reservation_still_counts(ledger: Factory) -> None:
    with session_scope(ledger) as s:
        settle(s, T, uuid.uuid4(), NOW, 0, D(0), 12, D("0.001"))
    assert used(day(ledger)) == (D("0.001"), 12, 0, 0)


def test_a_refusal_leaves_the_callers_transaction_usable(ledger: Factory) -> None:
    limit(ledger, "day", D("1"), None)
    with session_scope(ledger) as s:
        assert not reserve(s, T, uuid.uuid4(), None, 1, D("2"), NOW)  # the dear deployment
        assert reserve(s, T, uuid.uuid4(), None, 1, D("0.5"), NOW)  # a cheaper one
    assert used(day(ledger)) == (0, 0, D("0.5"), 1)


def test_set_limits_applies_to_the_live_window(ledger: Factory) -> None:
    assert rsv(ledger, 10, D("0.5"))  # the window exists, unlimited
    limit(ledger, "day", D("0.6"), 100)
    assert (day(ledger).limit_usd, day(ledger).limit_tokens) == (D("0.6"), 100)
    assert not rsv(ledger, 10, D("0.2"))
    limit(ledger, "day", None, 100)  # remove the USD limit, keep tokens
    assert rsv(ledger, 10, D("0.2"))
    assert not rsv(ledger, 81, D(0))
    with session_scope(ledger) as s:
        assert get_limits(s, T) == {"day": (None, 100), "month": (None, None)}
        assert s.scalar(select(func.count()).select_from(QuotaLimit)) == 1
    assert used(day(ledger)) == (0, 0, D("0.7"), 20)  # changing limits never touches usage


def test_quota_report(ledger: Factory) -> None:
    limit(ledger, "month", D("30"), None)
    with session_scope(ledger) as s:
        set_limits(s, "other", "day", None, 5000, NOW)
    assert rsv(ledger, 100, D("1.5"))
    with session_scope(ledger) as s:
        settle(s, T, uuid.uuid4(), NOW, 100, D("1.5"), 40, D("1.25"))
        assert reserve(s, T, uuid.uuid4(), None, 7, D("0.5"), NOW)
    with session_scope(ledger) as s:
        everyone = quota_report(s, None, NOW)
        nobody = quota_report(s, "new", NOW)
    assert [(w.tenant, w.period) for w in everyone] == [
        ("acme", "day"),
        ("acme", "month"),
        ("other", "day"),
        ("other", "month"),
    ]
    acme_month = everyone[1]
    assert (acme_month.used_usd, acme_month.reserved_usd, acme_month.remaining_usd) == (
        D("1.25"),
        D("0.5"),
        D("28.25"),
    )
    assert acme_month.resets_at == datetime(2025, 4, 1, tzinfo=UTC)
    assert everyone[0].remaining_usd is None  # no day limit
    other_day = everyone[2]  # never used: shown from its limits
    assert (other_day.limit_tokens, other_day.used_tokens, other_day.remaining_tokens) == (
        5000,
        0,
        5000,
    )
    assert [(w.period, w.used_usd, w.limit_usd) for w in nobody] == [
        ("day", 0, None),
        ("month", 0, None),
    ]


@pytest.mark.parametrize("period", ["week", "batch"])
def test_set_limits_rejects_other_periods(ledger: Factory, period: str) -> None:
    with pytest.raises(ValueError, match="period"), session_scope(ledger) as s:
        set_limits(s, T, period, D(1), None, NOW)
