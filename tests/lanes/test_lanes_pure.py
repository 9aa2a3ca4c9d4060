"""The lane decision and its prices are pure (issue 18): tables of inputs and expected values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.durations import parse_duration
from schemas.config import LLMModelConfig
from workers.pricing import Price
from workers.routing.lanes import batch_price, choose_batch, flush_due, lane_open, pull_back_at
from workers.routing.select import Candidate

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
SYNC = Price(Decimal("1"), Decimal("4"), "config", "config")
HALF = Price(Decimal("0.5"), Decimal("2"), "genai-prices batch", "x")


@pytest.mark.parametrize(
    ("known", "discount", "want"),
    [
        (HALF, Decimal("0.5"), (Decimal("0.5"), Decimal("2"))),  # genai-prices knows it
        (None, Decimal("0.5"), (Decimal("0.5"), Decimal("2.0"))),  # unknown: the discount
        (SYNC, Decimal("0.5"), (Decimal("0.5"), Decimal("2.0"))),  # "batch" == full: unknown
        (None, Decimal("0.6"), (Decimal("0.6"), Decimal("2.4"))),
        (
            Price(Decimal("2"), Decimal("1"), "g", "x"),
            Decimal("0.5"),
            (Decimal("0.5"), Decimal("2.0")),
        ),
    ],
)
def test_batch_price(known, discount, want):  # type: ignore[no-untyped-def]
    got = batch_price(SYNC, known, discount)
    assert got is not None and (got.input_per_mtok, got.output_per_mtok) == want


def test_batch_price_unknown_sync_is_unknown():
    assert batch_price(None, HALF, Decimal("0.5")) is None


@pytest.mark.parametrize(
    ("deadline_s", "enabled", "window", "margin", "want"),
    [
        (None, True, 3600, 3600, False),  # no deadline: never
        (86400, True, 3600, 3600, True),  # --deadline 24h
        (7200, True, 3600, 3600, False),  # exactly window + margin: not more
        (7201, True, 3600, 3600, True),
        (86400, False, 3600, 3600, False),  # lanes off
        (100, True, 0, 0, True),
        (-5, True, 0, 0, False),  # past its deadline
    ],
)
def test_lane_open(deadline_s, enabled, window, margin, want):  # type: ignore[no-untyped-def]
    deadline = NOW + timedelta(seconds=deadline_s) if deadline_s is not None else None
    assert lane_open(deadline, NOW, enabled, window, margin) is want


def _cand(dep_id: str, est: str | None) -> Candidate:
    dep = LLMModelConfig(name="m", provider="openai", id=dep_id)
    return Candidate(dep, "m", False, 100, 100, Decimal(est) if est else None)


PRICES = {
    "a": Price(Decimal("1"), Decimal("1"), "c", "c"),
    "b": Price(Decimal("0.4"), Decimal("0.4"), "c", "c"),
}


@pytest.mark.parametrize(
    ("plan", "capable", "want"),
    [
        ([("a", "0.0002")], {"a"}, "a"),
        ([("a", "0.0002"), ("b", "0.0003")], {"a", "b"}, "b"),  # the cheapest batch lane
        ([("a", "0.0002")], set(), None),  # no batch API
        ([("free", "0"), ("a", "0.0002")], {"a"}, None),  # a free sync lane is cheaper
        ([("x", "0.0002")], {"x"}, None),  # unpriced lane: never shown cheaper
    ],
)
def test_choose_batch(plan, capable, want):  # type: ignore[no-untyped-def]
    cands = [_cand(d, e) for d, e in plan]
    got = choose_batch(cands, lambda d: d in capable, PRICES.get)
    assert (got.candidate.deployment_id if got else None) == want


@pytest.mark.parametrize(
    ("pending", "age", "after", "most", "want"),
    [(0, 999, 60, 10, False), (3, 10, 60, 10, False), (3, 60, 60, 10, True), (10, 0, 60, 10, True)],
)
def test_flush_due(pending, age, after, most, want):  # type: ignore[no-untyped-def]
    assert flush_due(pending, age, after, most) is want


def test_pull_back_at():
    assert pull_back_at(NOW, 3600) == NOW - timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("90m", 5400), ("2d", 172800), ("3600s", 3600), ("1.5h", 5400)],
)
def test_parse_duration(text, seconds):  # type: ignore[no-untyped-def]
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "0h", "1w", "400d"])
def test_parse_duration_rejects(text):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
