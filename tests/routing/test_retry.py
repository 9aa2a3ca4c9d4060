"""retry.decide and retry.backoff_s as tables: every error leaf x candidate position x budget."""

from __future__ import annotations

import itertools

import pytest

from core.errors import (
    AuthFailed,
    BadRequest,
    ConfigError,
    ContentFiltered,
    ContextTooLong,
    InfraError,
    InsufficientCredit,
    InvalidJob,
    InvalidOutput,
    LLMProviderError,
    MalformedReply,
    ModelUnavailable,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    Refused,
    RequestRejected,
    TransientProviderError,
)
from schemas.config import RoutingSettings
from schemas.job import ErrorKind
from workers.retry import Decision, backoff_s, decide

POLICY = RoutingSettings(max_attempts=6, backoff_base_s=0.5, backoff_max_s=30.0)

# error class -> (action with candidates left, exclude, action with none left). Written out by
# hand from the policy table; `decide` must agree for every position and budget.
TABLE: dict[type[Exception], tuple[str, bool, str]] = {
    RateLimited: ("fallback", False, "retry_later"),
    ProviderUnavailable: ("fallback", False, "retry_later"),
    ProviderTimeout: ("retry_later", False, "retry_later"),
    TransientProviderError: ("retry_later", False, "retry_later"),
    AuthFailed: ("fallback", True, "fail"),
    ModelUnavailable: ("fallback", True, "fail"),
    InsufficientCredit: ("fallback", True, "fail"),
    ProviderRejected: ("fallback", True, "fail"),
    MalformedReply: ("fallback", True, "retry_later"),
    InvalidOutput: ("fallback", True, "retry_later"),
    ContextTooLong: ("fallback", True, "fail"),
    BadRequest: ("fail", False, "fail"),
    ContentFiltered: ("fail", False, "fail"),
    Refused: ("fail", False, "fail"),
    RequestRejected: ("fail", False, "fail"),
    LLMProviderError: ("retry_later", False, "retry_later"),
}

# Three-candidate plan: failing on the first leaves 2, the middle 1, the last 0.
POSITIONS = {"first": 2, "middle": 1, "last": 0}
# attempt_no: plenty left, the last retry still allowed, the budget's final attempt, beyond.
ATTEMPTS = {"first_attempt": 1, "one_left": 5, "budget_used": 6, "over_budget": 9}


def expected(cls: type[Exception], left: int, attempt_no: int) -> tuple[str, bool, ErrorKind]:
    with_left, exclude, none_left = TABLE[cls]
    action = with_left if left > 0 else none_left
    kind = cls().kind  # type: ignore[attr-defined]
    if action == "fail":
        return "fail", False, kind
    if attempt_no >= POLICY.max_attempts:
        # Invalid output keeps its own kind when the budget ends on it (the honest reason).
        return "fail", False, kind if cls is InvalidOutput else ErrorKind.ATTEMPTS_EXHAUSTED
    return action, exclude if action == "fallback" else False, kind


GRID = list(itertools.product(TABLE, POSITIONS.items(), ATTEMPTS.items()))


@pytest.mark.parametrize(
    ("cls", "position", "attempt"),
    GRID,
    ids=[f"{c.__name__}-{p[0]}-{a[0]}" for c, p, a in GRID],
)
def test_decide_table(
    cls: type[Exception], position: tuple[str, int], attempt: tuple[str, int]
) -> None:
    left, attempt_no = position[1], attempt[1]
    d = decide(cls("boom", status=500), attempt_no, POLICY, left, 0.5)
    assert (d.action, d.exclude, d.kind) == expected(cls, left, attempt_no)
    if d.action == "retry_later":
        assert d.delay_s == backoff_s(attempt_no - 1, None, POLICY, 0.5)
    else:
        assert d.delay_s == 0.0


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bug"),
        KeyError("x"),
        InfraError("postgres went away"),
        ConfigError("bad yaml"),
        InvalidJob("no model"),
        QuotaExceeded("no room"),
    ],
)
@pytest.mark.parametrize("left", [0, 2])
@pytest.mark.parametrize("attempt_no", [1, 6])
def test_non_provider_errors_fail_internal(error: Exception, left: int, attempt_no: int) -> None:
    assert decide(error, attempt_no, POLICY, left, 0.3) == Decision(
        "fail", 0.0, False, ErrorKind.INTERNAL
    )


@pytest.mark.parametrize("cls", [RateLimited, ProviderUnavailable, ProviderTimeout, MalformedReply])
@pytest.mark.parametrize("retry_after", [0.0, 2.0, 45.0, 600.0])
def test_retry_later_never_sooner_than_retry_after(
    cls: type[Exception], retry_after: float
) -> None:
    for attempt_no in range(1, POLICY.max_attempts):
        d = decide(cls("slow down", retry_after=retry_after), attempt_no, POLICY, 0, 0.99)
        assert d.action == "retry_later"
        assert d.delay_s >= retry_after
        assert d.delay_s == max(retry_after, backoff_s(attempt_no - 1, None, POLICY, 0.99))


def test_rate_limited_with_candidates_moves_now_despite_retry_after() -> None:
    d = decide(RateLimited("429", retry_after=120.0), 1, POLICY, 1, 0.5)
    assert d == Decision("fallback", 0.0, False, ErrorKind.RATE_LIMITED)


def test_budget_is_configurable() -> None:
    tight = RoutingSettings(max_attempts=2)
    assert decide(ProviderTimeout("t"), 1, tight, 0, 0.0).action == "retry_later"
    assert decide(ProviderTimeout("t"), 2, tight, 0, 0.0).kind == ErrorKind.ATTEMPTS_EXHAUSTED
    assert decide(AuthFailed("a"), 2, tight, 3, 0.0).kind == ErrorKind.ATTEMPTS_EXHAUSTED


# ---- backoff --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "retry_after", "rng", "seconds"),
    [
        (0, None, 0.0, 0.5),
        (1, None, 0.0, 1.0),
        (3, None, 0.0, 4.0),
        (5, None, 0.0, 16.0),
        (6, None, 0.0, 30.0),  # 32 capped
        (200, None, 0.0, 30.0),
        (10_000, None, 0.5, 30.0 * 0.875),  # no overflow
        (-3, None, 0.0, 0.5),  # negative n = first retry
        (0, None, 1.0, 0.375),  # jitter takes up to a quarter off
        (3, None, 0.5, 3.5),
        (6, None, 1.0, 22.5),
        (3, 1.0, 0.0, 4.0),  # retry_after shorter than the backoff: backoff wins
        (0, 2.0, 0.0, 2.0),  # longer: retry_after wins
        (6, 45.0, 0.0, 45.0),  # even above the cap
        (6, 45.0, 1.0, 45.0),  # jitter never shortens retry_after
        (2, 0.0, 0.0, 2.0),
        (0, None, 7.0, 0.375),  # rng outside [0, 1] is clamped
        (0, None, -1.0, 0.5),
    ],
)
def test_backoff_s(n: int, retry_after: float | None, rng: float, seconds: float) -> None:
    assert backoff_s(n, retry_after, POLICY, rng) == pytest.approx(seconds)


def test_backoff_grows_then_caps() -> None:
    delays = [backoff_s(n, None, POLICY, 0.0) for n in range(12)]
    assert delays == sorted(delays)
    assert max(delays) == POLICY.backoff_max_s


def test_invalid_output_walks_the_plan_then_ends_as_invalid_output() -> None:
    """Two deployments, budget 3: move to the other one, ask it again, then fail honestly."""
    tight = RoutingSettings(max_attempts=3, backoff_base_s=0.5)
    steps = [decide(InvalidOutput("bad json"), n, tight, left, 0.0) for n, left in ((1, 1), (2, 0), (3, 0))]  # fmt: skip
    assert [(d.action, d.exclude) for d in steps] == [
        ("fallback", True),
        ("retry_later", False),
        ("fail", False),
    ]
    assert [d.kind for d in steps] == [ErrorKind.INVALID_OUTPUT] * 3


def test_refusal_fails_at_once_even_with_candidates_and_budget_left() -> None:
    assert decide(Refused("no"), 1, POLICY, 3, 0.0) == Decision(
        "fail", 0.0, False, ErrorKind.REFUSED
    )
