"""Issue 20, pure rules: strict token counts, the usage sanity bound, booking at the reservation,
and the Retry-After cap. Table-driven; no I/O."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from schemas.job import ErrorKind, Usage
from workers.providers.wire import MAX_COUNT, UNTRUSTED, strict_count
from workers.retry import cap_retry_after
from workers.usage_check import DEFAULT_WINDOW_BOUND, booked, usage_problem


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (12, 12),
        (12.0, 12),  # Cohere sends whole floats
        (MAX_COUNT, MAX_COUNT),
        (1e20, UNTRUSTED),
        (10**30, UNTRUSTED),
        (-1_000_000, UNTRUSTED),
        (-1, UNTRUSTED),
        (1.5, UNTRUSTED),
        ("12", UNTRUSTED),
        (True, UNTRUSTED),
        (math.nan, UNTRUSTED),
        (math.inf, UNTRUSTED),
        ([1], UNTRUSTED),
        ({"n": 1}, UNTRUSTED),
    ],
)
def test_strict_count(raw: object, expected: int) -> None:
    assert strict_count(raw) == expected


def test_untrusted_stays_negative_when_summed_with_real_counts() -> None:
    assert UNTRUSTED + MAX_COUNT * 3 < 0
    assert UNTRUSTED * 2 < 0


@pytest.mark.parametrize(
    ("prompt", "completion", "window", "max_tokens", "bad"),
    [
        (50, 20, 1000, 100, False),
        (900, 100, 1000, 100, False),  # exactly window + max_tokens
        (1001, 100, 1000, 100, True),
        (-1_000_000, 20, 1000, 100, True),
        (50, -1, 1000, 100, True),
        (UNTRUSTED, 20, 1000, 100, True),
        (10**12, 10, None, 100, True),  # 10^12 on a small call, no window configured
        (10**20, 10, None, 100, True),
        (DEFAULT_WINDOW_BOUND, 100, None, 100, False),
        (DEFAULT_WINDOW_BOUND, 101, None, 100, True),
    ],
)
def test_usage_problem(
    prompt: int, completion: int, window: int | None, max_tokens: int, bad: bool
) -> None:
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    assert (usage_problem(usage, window, max_tokens) is not None) is bad


def test_estimated_usage_is_ours_and_trusted() -> None:
    assert usage_problem(Usage(prompt_tokens=10**15, estimated=True), 1000, 10) is None


def test_booked_keeps_a_plausible_usage_and_its_price() -> None:
    usage = Usage(prompt_tokens=50, completion_tokens=20)
    got = booked(
        usage,
        Decimal("0.001"),
        context_window=1000,
        max_tokens=100,
        reserved_tokens=300,
        reserved_usd=Decimal("0.01"),
    )
    assert (got.usage, got.cost_usd, got.error_kind, got.note) == (
        usage,
        Decimal("0.001"),
        None,
        None,
    )


@pytest.mark.parametrize("prompt", [-1_000_000, UNTRUSTED, 10**12, 10**20])
def test_booked_prices_an_untrusted_usage_at_the_reservation(prompt: int) -> None:
    usage = Usage(prompt_tokens=prompt, completion_tokens=5)
    got = booked(
        usage,
        Decimal(prompt) / 1_000_000,  # whatever pricing made of it: never booked
        context_window=1000,
        max_tokens=100,
        reserved_tokens=300,
        reserved_usd=Decimal("0.01"),
    )
    assert got.cost_usd == Decimal("0.01")
    assert got.usage == Usage(prompt_tokens=200, completion_tokens=100, estimated=True)
    assert got.error_kind == ErrorKind.MALFORMED_REPLY
    assert got.note and "untrusted" in got.note


@pytest.mark.parametrize(
    ("seconds", "cap", "expected"),
    [
        (None, 3600, None),
        (0.0, 3600, 0.0),
        (1.5, 3600, 1.5),
        (3600.0, 3600, 3600.0),
        (999_999_999.0, 3600, 3600.0),
        (math.inf, 3600, 3600.0),
        (-5.0, 3600, None),
        (math.nan, 3600, None),
        (120.0, 60, 60.0),
    ],
)
def test_cap_retry_after(seconds: float | None, cap: float, expected: float | None) -> None:
    assert cap_retry_after(seconds, cap) == expected
