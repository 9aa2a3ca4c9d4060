"""workers.quota (the prompt bound, the worst case), core.quota (the UTC windows) and
core.money (rounding up): pure, table-driven."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from core.ledger import quota_repo
from core.money import money_up
from core.quota import next_reset, window_end, windows
from schemas.job import ChatMessage
from simulator.textgen import count_prompt_tokens
from workers.pricing import Price
from workers.quota import prompt_token_bound, worst_case


def _user(*texts: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=t) for t in texts]


@pytest.mark.parametrize(
    ("messages", "system", "allowance", "expected"),
    [
        (_user("hello"), None, 8, 5 + 8),
        (_user("é"), None, 0, 2),  # two UTF-8 bytes
        (_user("🙂"), None, 0, 4),  # four UTF-8 bytes
        (_user("日本"), None, 1, 6 + 1),
        (_user("a", "bc"), None, 8, 3 + 16),
        (_user("a"), "be brief", 8, 1 + 8 + 8 + 8),  # a system prompt is one more message
        (_user(""), "", 3, 6),  # empty texts still pay the framing allowance
    ],
)
def test_prompt_token_bound(
    messages: list[ChatMessage], system: str | None, allowance: int, expected: int
) -> None:
    assert prompt_token_bound(messages, system, allowance) == expected


TEXTS = [
    "",
    "a",
    "abc",
    "abcd",
    "abcde",
    "é" * 7,
    "🙂" * 3,
    "mixed é 🙂 日本 text " * 40,
    "x" * 5000,
]


@pytest.mark.parametrize("allowance", [3, 8])
@pytest.mark.parametrize("system", [None, "", "You are terse. é"])
def test_bound_covers_the_simulators_count(allowance: int, system: str | None) -> None:
    """The simulator bills ceil(bytes/4) + 3 per message (system included): always within."""
    for n in range(1, 4):
        messages = _user(*TEXTS[:n], *TEXTS[-n:])
        texts = [m.content for m in messages] + ([system] if system is not None else [])
        billed = count_prompt_tokens(texts, len(texts))
        assert billed <= prompt_token_bound(messages, system, allowance)


PRICE = Price(Decimal("3"), Decimal("15"), "test", "v1")


@pytest.mark.parametrize(
    ("bound", "max_tokens", "price", "expected"),
    [
        (1000, 500, PRICE, (1500, Decimal("0.0105"))),  # 1000*3/1e6 + 500*15/1e6
        (0, 0, PRICE, (0, Decimal(0))),
        (1, 0, Price(Decimal("0.001"), Decimal(0), "t", "v"), (1, Decimal("0.00000001"))),  # up
        (3, 1, Price(Decimal("1"), Decimal("1"), "t", "v"), (4, Decimal("0.000004"))),
        (1000, 500, None, (1500, Decimal(0))),  # unknown price: tokens only
    ],
)
def test_worst_case(
    bound: int, max_tokens: int, price: Price | None, expected: tuple[int, Decimal]
) -> None:
    tokens, usd = worst_case(bound, max_tokens, price)
    assert (tokens, usd) == expected
    assert usd == usd.quantize(Decimal("1e-8"))  # fits the ledger's NUMERIC(18, 8) exactly


def test_worst_case_never_rounds_down() -> None:
    price = Price(Decimal("0.37"), Decimal("1.13"), "t", "v")
    for bound in range(0, 300, 7):
        exact = (bound * price.input_per_mtok + 50 * price.output_per_mtok) / Decimal(10**6)
        _, usd = worst_case(bound, 50, price)
        assert exact <= usd < exact + Decimal("1e-8")


def test_money_up() -> None:
    assert money_up(Decimal("0.000000001")) == Decimal("0.00000001")
    assert money_up(Decimal("1.5")) == Decimal("1.50000000")
    assert money_up(Decimal("0")) == Decimal("0")


@pytest.mark.parametrize(
    ("now", "day", "month"),
    [
        (datetime(2025, 3, 14, 12, 0, tzinfo=UTC), date(2025, 3, 14), date(2025, 3, 1)),
        (datetime(2025, 3, 1, 0, 0, tzinfo=UTC), date(2025, 3, 1), date(2025, 3, 1)),
        (datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC), date(2025, 3, 31), date(2025, 3, 1)),
        # 01:30 in UTC+2 is still the previous UTC day, and month
        (
            datetime(2025, 4, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),
            date(2025, 3, 31),
            date(2025, 3, 1),
        ),
        (datetime(2025, 3, 14, 12, 0), date(2025, 3, 14), date(2025, 3, 1)),  # naive = UTC
    ],
)
def test_windows_are_utc(now: datetime, day: date, month: date) -> None:
    assert windows(now) == {"day": day, "month": month}


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        (datetime(2025, 3, 14, 12, 0, tzinfo=UTC), datetime(2025, 3, 15, tzinfo=UTC)),
        (datetime(2025, 3, 14, 0, 0, tzinfo=UTC), datetime(2025, 3, 15, tzinfo=UTC)),
        (datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        (datetime(2024, 2, 28, 8, 0, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_next_reset_is_the_next_utc_midnight(now: datetime, reset: datetime) -> None:
    assert next_reset(now) == reset
    assert quota_repo.next_reset(now) == reset  # the contract names it in quota_repo too


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("day", date(2025, 12, 31), datetime(2026, 1, 1, tzinfo=UTC)),
        ("month", date(2025, 12, 1), datetime(2026, 1, 1, tzinfo=UTC)),
        ("month", date(2024, 2, 1), datetime(2024, 3, 1, tzinfo=UTC)),
        ("month", date(2025, 1, 1), datetime(2025, 2, 1, tzinfo=UTC)),
    ],
)
def test_window_end(period: str, start: date, end: datetime) -> None:
    assert window_end(period, start) == end


def test_window_end_rejects_a_batch_window() -> None:
    with pytest.raises(ValueError, match="batch"):
        window_end("batch", date(1970, 1, 1))
