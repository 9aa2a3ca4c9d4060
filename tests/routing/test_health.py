"""Health stores: the same behaviour from the in-memory store and from real Redis.

Time is synthetic (`now` is passed in), so nothing here waits on a clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.errors import (
    AuthFailed,
    BadRequest,
    ContentFiltered,
    ContextTooLong,
    InfraError,
    InsufficientCredit,
    MalformedReply,
    ModelUnavailable,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from schemas.config import RoutingSettings
from workers.providers.base import RateLimitInfo
from workers.routing._health_model import PROBE_LEASE_S, RATE_WINDOW_S, RECENT_CALLS
from workers.routing.health import (
    DeploymentHealth,
    HealthStore,
    MemoryHealthStore,
    RedisHealthStore,
)

T0 = 1_700_000_000.0
DEP = "openai/gpt-x"
POLICY = RoutingSettings(
    circuit_failures=3,
    circuit_open_s=30.0,
    default_cooldown_s=5.0,
    circuit_min_calls=10,
    circuit_failure_rate=0.5,
)
RATE_ONLY = POLICY.model_copy(update={"circuit_failures": 1000})  # only the rate rule opens


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[HealthStore]:
    if request.param == "memory":
        yield MemoryHealthStore()
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisHealthStore(client)
    client.close()


def health(store: HealthStore, now: float, dep: str = DEP) -> DeploymentHealth:
    return store.snapshot([dep], now).get(dep)


def fail(
    store: HealthStore, error: Exception, now: float, policy: RoutingSettings = POLICY
) -> None:
    store.record_failure(DEP, error, now, policy)  # type: ignore[arg-type]


# ---- snapshot and cooldowns -----------------------------------------------------------------


def test_unknown_deployment_is_healthy(store: HealthStore) -> None:
    assert health(store, T0) == DeploymentHealth()
    assert store.stats([DEP])[DEP]["calls"] == 0


@pytest.mark.parametrize(
    ("error", "until"),
    [
        (RateLimited("429", status=429, retry_after=12.5), T0 + 12.5),
        (RateLimited("429", status=429), T0 + 5.0),  # no Retry-After: default cooldown
        (ProviderUnavailable("503", status=503, retry_after=7.0), T0 + 7.0),
        (ProviderUnavailable("529", status=529), T0 + 5.0),
        (ProviderUnavailable("connect"), T0 + 5.0),
        (ProviderTimeout("slow"), 0.0),
        (BadRequest("400", status=400), 0.0),
        (ContextTooLong("long", status=400), 0.0),
        (AuthFailed("401", status=401), 0.0),
        (ProviderTimeout("slow", retry_after=3.0), T0 + 3.0),  # a server hint is honoured
    ],
)
def test_cooldowns(store: HealthStore, error: Exception, until: float) -> None:
    fail(store, error, T0)
    assert health(store, T0).cooldown_until == until
    if until:
        assert store.try_acquire(DEP, None, None, 10, T0) == pytest.approx(until - T0)
        assert store.try_acquire(DEP, None, None, 10, until) == 0.0


def test_later_cooldown_wins(store: HealthStore) -> None:
    fail(store, RateLimited("a", retry_after=30.0), T0)
    fail(store, RateLimited("b", retry_after=5.0), T0 + 1)
    assert health(store, T0 + 1).cooldown_until == T0 + 30
    fail(store, RateLimited("c", retry_after=60.0), T0 + 2)
    assert health(store, T0 + 2).cooldown_until == T0 + 62


def test_rate_limit_headers_exhausted_window_cools_down(store: HealthStore) -> None:
    info = RateLimitInfo(remaining_requests=0, reset_requests_s=20.0, remaining_tokens=5)
    store.record_success(DEP, 100.0, info, T0)
    assert health(store, T0).cooldown_until == T0 + 20
    both = RateLimitInfo(
        remaining_requests=0, reset_requests_s=3.0, remaining_tokens=0, reset_tokens_s=40.0
    )
    store.record_success(DEP, 100.0, both, T0 + 1)
    assert health(store, T0 + 1).cooldown_until == T0 + 41
    store.record_success(DEP, 100.0, RateLimitInfo(remaining_requests=0), T0 + 2)  # no reset
    assert health(store, T0 + 2).cooldown_until == T0 + 41


# ---- circuit breaker ------------------------------------------------------------------------


def test_consecutive_failures_open_the_circuit(store: HealthStore) -> None:
    fail(store, ProviderTimeout("t"), T0)
    fail(store, ProviderTimeout("t"), T0 + 1)
    store.record_success(DEP, 50.0, None, T0 + 2)  # resets the run
    fail(store, ProviderTimeout("t"), T0 + 3)
    fail(store, MalformedReply("m"), T0 + 4)
    assert health(store, T0 + 4).circuit == "closed"
    fail(store, ProviderUnavailable("500", status=500, retry_after=0.0), T0 + 5)
    h = health(store, T0 + 5)
    assert (h.circuit, h.open_until) == ("open", T0 + 35)


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("429"),
        BadRequest("400"),
        ContextTooLong("long"),
        ContentFiltered("no"),
    ],
)
def test_throttling_and_bad_requests_never_open_the_circuit(
    store: HealthStore, error: Exception
) -> None:
    for i in range(25):
        fail(store, error, T0 + i * 100)
    assert health(store, T0 + 2500).circuit == "closed"
    stats = store.stats([DEP])[DEP]
    assert stats["calls"] == 25 and stats["failures"] == 0 and stats["success_rate"] is None


@pytest.mark.parametrize("cls", [AuthFailed, ModelUnavailable, InsufficientCredit])
def test_account_wide_rejections_open_at_once(store: HealthStore, cls: type[Exception]) -> None:
    fail(store, cls("no"), T0)
    h = health(store, T0)
    assert (h.circuit, h.open_until) == ("open", T0 + 30)
    assert not store.claim_probe(DEP, T0 + 29)


def test_failure_rate_opens_the_circuit(store: HealthStore) -> None:
    # Alternate: 50 % failures. Nine calls are not enough to judge; the tenth is.
    for i in range(9):
        if i % 2:
            store.record_success(DEP, 10.0, None, T0 + i)
        else:
            fail(store, ProviderTimeout("t"), T0 + i, RATE_ONLY)
        assert health(store, T0 + i).circuit == "closed"
    store.record_success(DEP, 10.0, None, T0 + 9)  # 10 calls, 5 failed ... but a success
    assert health(store, T0 + 9).circuit == "closed"
    fail(store, ProviderTimeout("t"), T0 + 10, RATE_ONLY)  # 11 calls, 6 failed
    assert health(store, T0 + 10).circuit == "open"


def test_failure_rate_only_counts_the_last_minute(store: HealthStore) -> None:
    for i in range(9):  # 5 of 9 failed: not enough calls to judge yet
        if i % 2:
            store.record_success(DEP, 10.0, None, T0 + i)
        else:
            fail(store, ProviderTimeout("t"), T0 + i, RATE_ONLY)
    fail(store, ProviderTimeout("t"), T0 + 100, RATE_ONLY)  # 10 on record, but 1 recent
    assert health(store, T0 + 100).circuit == "closed"


def test_failure_rate_is_judged_afresh_after_closing(store: HealthStore) -> None:
    for i in range(12):  # 12 failures, a minute and more ago
        fail(store, ProviderTimeout("t"), T0 + i * 0.1, RATE_ONLY)
        if i < 9:
            store.record_success(DEP, 10.0, None, T0 + i * 0.1)
    # The rule fired back then; recover via a successful probe, then fail once much later.
    assert health(store, T0 + 2).circuit == "open"
    assert store.claim_probe(DEP, T0 + 40)
    store.record_success(DEP, 10.0, None, T0 + 40)
    assert health(store, T0 + 40).circuit == "closed"
    fail(store, ProviderTimeout("t"), T0 + 41, RATE_ONLY)
    assert health(store, T0 + 41).circuit == "closed"  # old failures predate the closing


def test_half_open_probe_success_closes(store: HealthStore) -> None:
    fail(store, AuthFailed("401"), T0)
    assert health(store, T0 + 10).circuit == "open"
    assert health(store, T0 + 30).circuit == "half_open"
    assert store.claim_probe(DEP, T0 + 30)
    assert not store.claim_probe(DEP, T0 + 31)  # one probe at a time
    h = health(store, T0 + 31)
    assert (h.circuit, h.open_until) == ("open", T0 + 30 + PROBE_LEASE_S)  # others skip it
    store.record_success(DEP, 80.0, None, T0 + 32)
    assert health(store, T0 + 32).circuit == "closed"
    assert store.claim_probe(DEP, T0 + 33)  # closed: anyone may call


def test_half_open_probe_failure_reopens(store: HealthStore) -> None:
    for i in range(3):
        fail(store, ProviderTimeout("t"), T0 + i)
    assert store.claim_probe(DEP, T0 + 40)
    fail(store, ProviderTimeout("t"), T0 + 41)
    h = health(store, T0 + 41)
    assert (h.circuit, h.open_until) == ("open", T0 + 71)
    assert not store.claim_probe(DEP, T0 + 70)
    assert store.claim_probe(DEP, T0 + 71)


def test_probe_lease_expires_if_the_prober_vanishes(store: HealthStore) -> None:
    fail(store, ModelUnavailable("404"), T0)
    assert store.claim_probe(DEP, T0 + 30)
    assert not store.claim_probe(DEP, T0 + 30 + PROBE_LEASE_S - 1)
    assert health(store, T0 + 30 + PROBE_LEASE_S).circuit == "half_open"
    assert store.claim_probe(DEP, T0 + 30 + PROBE_LEASE_S)


def test_success_while_open_does_not_close_early(store: HealthStore) -> None:
    fail(store, AuthFailed("401"), T0)
    store.record_success(DEP, 10.0, None, T0 + 1)  # a call that started before the 401
    assert health(store, T0 + 1).circuit == "open"


def test_exactly_one_concurrent_prober(store: HealthStore) -> None:
    fail(store, AuthFailed("401"), T0)
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def race() -> None:
        start.wait()
        won = store.claim_probe(DEP, T0 + 31)
        with lock:
            results.append(won)

    threads = [threading.Thread(target=race) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 15 + [True]


# ---- rate pacing ----------------------------------------------------------------------------


def test_requests_per_minute_sliding_window(store: HealthStore) -> None:
    w = RATE_WINDOW_S
    for t in (0, 30, 50):
        assert store.try_acquire(DEP, 3, None, 10, T0 + t) == 0.0
    assert store.try_acquire(DEP, 3, None, 10, T0 + 55) == pytest.approx(w - 55)
    assert store.try_acquire(DEP, 3, None, 10, T0 + w) == 0.0  # the t=0 one left the window
    assert store.try_acquire(DEP, 3, None, 10, T0 + w + 1) == pytest.approx(30 - 1)
    assert store.try_acquire(DEP, 3, None, 10, T0 + 30 + w) == 0.0


def test_tokens_per_minute(store: HealthStore) -> None:
    assert store.try_acquire(DEP, None, 1000, 400, T0) == 0.0
    assert store.try_acquire(DEP, None, 1000, 400, T0 + 10) == 0.0
    assert store.try_acquire(DEP, None, 1000, 0, T0 + 11) == 0.0  # no tokens: no token budget
    # 800 taken; 400 more would exceed: the t=0 400 must leave first.
    assert store.try_acquire(DEP, None, 1000, 400, T0 + 20) == pytest.approx(RATE_WINDOW_S - 20)
    assert store.try_acquire(DEP, None, 1000, 200, T0 + 20) == 0.0  # 1000 exactly fits
    # 1000 in the window; 600 more need both earlier 400s gone (t=10 + window).
    assert store.try_acquire(DEP, None, 1000, 600, T0 + 21) == pytest.approx(RATE_WINDOW_S - 11)
    assert store.try_acquire(DEP, None, 1000, 600, T0 + 10 + RATE_WINDOW_S) == 0.0


def test_request_larger_than_the_token_limit_goes_alone(store: HealthStore) -> None:
    assert store.try_acquire(DEP, None, 1000, 100, T0) == 0.0
    assert store.try_acquire(DEP, None, 1000, 5000, T0 + 1) == pytest.approx(RATE_WINDOW_S - 1)
    assert store.try_acquire(DEP, None, 1000, 5000, T0 + RATE_WINDOW_S) == 0.0
    assert store.try_acquire(DEP, None, 1000, 1, T0 + RATE_WINDOW_S + 1) > 0


def test_both_limits_must_have_room(store: HealthStore) -> None:
    assert store.try_acquire(DEP, 2, 100, 10, T0) == 0.0
    assert store.try_acquire(DEP, 2, 100, 95, T0 + 5) == pytest.approx(RATE_WINDOW_S - 5)
    assert store.try_acquire(DEP, 2, 100, 90, T0 + 5) == 0.0
    assert store.try_acquire(DEP, 2, 100, 1, T0 + 6) == pytest.approx(RATE_WINDOW_S - 6)


def test_no_limits_admits_and_records_nothing(store: HealthStore) -> None:
    for i in range(50):
        assert store.try_acquire(DEP, None, None, 10_000, T0 + i * 0.01) == 0.0
    assert store.try_acquire(DEP, 1, None, 1, T0 + 1) == 0.0  # nothing was counted


def test_learned_limit_applies_when_lower(store: HealthStore) -> None:
    store.record_success(DEP, 10.0, RateLimitInfo(limit_requests=2, limit_tokens=10_000), T0)
    assert store.try_acquire(DEP, None, None, 1, T0) == 0.0  # learned rpm 2 applies alone
    assert store.try_acquire(DEP, 100, None, 1, T0) == 0.0
    assert store.try_acquire(DEP, 100, None, 1, T0) > 0  # min(100, 2)
    assert store.stats([DEP])[DEP]["learned_rpm"] == 2


def test_learned_limit_above_config_is_ignored(store: HealthStore) -> None:
    store.record_success(DEP, 10.0, RateLimitInfo(limit_requests=1000), T0)
    assert store.try_acquire(DEP, 1, None, 1, T0) == 0.0
    assert store.try_acquire(DEP, 1, None, 1, T0) > 0


def test_a_lagging_clock_cannot_reopen_a_full_window(store: HealthStore) -> None:
    assert store.try_acquire(DEP, 1, None, 1, T0 + 100) == 0.0
    # A caller whose clock says T0+90 (and whose own window would look empty) is admitted
    # as of the latest admission: it must wait for that one to leave.
    assert store.try_acquire(DEP, 1, None, 1, T0 + 90) == pytest.approx(10 + RATE_WINDOW_S)
    assert store.try_acquire(DEP, 1, None, 1, T0 + 100 + RATE_WINDOW_S) == 0.0


def test_concurrent_threads_never_over_admit(store: HealthStore) -> None:
    admitted: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def hammer() -> None:
        start.wait()
        n = sum(store.try_acquire(DEP, 17, None, 5, T0) == 0.0 for _ in range(20))
        with lock:
            admitted.append(n)

    threads = [threading.Thread(target=hammer) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 17


# ---- latency and success records ------------------------------------------------------------


def test_moving_averages_in_snapshot(store: HealthStore) -> None:
    store.record_success(DEP, 100.0, None, T0)
    h = health(store, T0)
    assert (h.latency_ms, h.success_rate, h.calls) == (100.0, 1.0, 1)
    store.record_success(DEP, 200.0, None, T0 + 1)
    fail(store, ProviderTimeout("t"), T0 + 2)
    h = health(store, T0 + 2)
    assert h.latency_ms == pytest.approx(120.0)  # 100 * 0.8 + 200 * 0.2
    assert h.success_rate == pytest.approx(0.8)
    assert h.calls == 3


def test_stats(store: HealthStore) -> None:
    for i in range(100):
        store.record_success(DEP, float(i + 1), None, T0 + i)
    for i in range(3):
        fail(store, ProviderTimeout("t"), T0 + 100 + i, RATE_ONLY.model_copy(update={"circuit_min_calls": 1000}))  # fmt: skip
    fail(store, RateLimited("429"), T0 + 200)
    fail(store, BadRequest("400"), T0 + 201)
    s = store.stats([DEP, "other/none"])
    assert s[DEP] == {
        "calls": 105,
        "successes": 100,
        "failures": 3,
        "rejected": 1,
        "throttled": 1,
        "success_rate": pytest.approx(100 / 103),
        "p50_latency_ms": 50.0,
        "p95_latency_ms": 95.0,
        "errors_by_kind": {"timeout": 3, "rate_limited": 1, "bad_request": 1},
        "learned_rpm": None,
        "learned_tpm": None,
    }
    assert s["other/none"]["calls"] == 0 and s["other/none"]["p50_latency_ms"] is None


def test_call_records_are_capped(store: HealthStore) -> None:
    for i in range(RECENT_CALLS + 50):
        store.record_success(DEP, float(i), None, T0 + i)
    assert store.stats([DEP])[DEP]["calls"] == RECENT_CALLS
    assert health(store, T0 + 1000).calls == RECENT_CALLS


# ---- Redis specifics ------------------------------------------------------------------------


def test_redis_keys_all_expire(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    s = RedisHealthStore(client, prefix="llmq:test")
    s.record_success(DEP, 10.0, RateLimitInfo(limit_requests=50), T0)
    fail(s, RateLimited("429", retry_after=3.0), T0)
    s.try_acquire(DEP, 10, 1000, 10, T0 + 3)
    keys = sorted(k.decode() for k in client.keys("llmq:test:*"))
    parts = ["calls", "cool", "learned", "rl", "rq", "st", "tk"]
    assert keys == [f"llmq:test:{{{DEP}}}:{p}" for p in parts]
    assert all(client.pttl(k) > 0 for k in keys)
    client.close()


def test_redis_stores_share_state(redis_url: str) -> None:
    a = RedisHealthStore(redis.Redis.from_url(redis_url))
    b = RedisHealthStore(redis.Redis.from_url(redis_url, decode_responses=True))
    fail(a, AuthFailed("401"), T0)
    assert health(b, T0).circuit == "open"
    assert a.try_acquire(DEP, 1, None, 1, T0) == 0.0
    assert b.try_acquire(DEP, 1, None, 1, T0) > 0
    b.record_success(DEP, 10.0, None, T0)
    assert b.stats([DEP])[DEP]["successes"] == 1


def test_redis_down_is_an_infra_error() -> None:
    no_retry = Retry(NoBackoff(), 0)
    dead = RedisHealthStore(redis.Redis(host="127.0.0.1", port=1, retry=no_retry))
    with pytest.raises(InfraError):
        dead.snapshot([DEP], T0)
    with pytest.raises(InfraError):
        dead.try_acquire(DEP, 1, None, 1, T0)
