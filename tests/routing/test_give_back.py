"""`give_back`: an admission whose call is never made returns its rate slot and probe lease.

The same behaviour from the in-memory store and from real Redis; time is synthetic.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from core.errors import AuthFailed, RateLimited
from schemas.config import LLMModelConfig, RoutingSettings
from workers.routing._health_model import RATE_WINDOW_S
from workers.routing.health import HealthStore, MemoryHealthStore, RedisHealthStore
from workers.routing.select import Candidate
from workers.routing.slots import Hold, confirm_slot, give_back, take_slot

T0 = 1_700_000_000.0
DEP = "openai/gpt-x"
POLICY = RoutingSettings(circuit_open_s=30.0)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[HealthStore]:
    if request.param == "memory":
        yield MemoryHealthStore()
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisHealthStore(client)
    client.close()


def test_a_given_back_slot_frees_both_windows(store: HealthStore) -> None:
    assert store.try_acquire(DEP, 2, 1000, 600, T0, ticket="a") == 0.0
    assert store.try_acquire(DEP, 2, 1000, 400, T0 + 1, ticket="b") == 0.0
    assert store.try_acquire(DEP, 2, 1000, 1, T0 + 2) > 0  # full: 2 requests, 1000 tokens

    store.give_back(DEP, "a", 600, None)

    # one request and 600 tokens are free again, at once
    assert store.try_acquire(DEP, 2, 1000, 600, T0 + 3, ticket="c") == 0.0
    assert store.try_acquire(DEP, 2, 1000, 1, T0 + 4) > 0


def test_giving_back_twice_or_an_unknown_ticket_changes_nothing(store: HealthStore) -> None:
    assert store.try_acquire(DEP, 1, 100, 100, T0, ticket="a") == 0.0
    store.give_back(DEP, "a", 100, None)
    store.give_back(DEP, "a", 100, None)
    store.give_back(DEP, "nobody", 100, None)
    store.give_back("never/seen", "x", 5, T0)
    assert store.try_acquire(DEP, 1, 100, 100, T0 + 1, ticket="b") == 0.0
    assert store.try_acquire(DEP, 1, 100, 1, T0 + 2) > 0  # "b" counts; nothing went negative


def test_a_slot_that_left_the_window_is_not_given_back_twice(store: HealthStore) -> None:
    assert store.try_acquire(DEP, None, 1000, 600, T0, ticket="old") == 0.0
    later = T0 + RATE_WINDOW_S + 1
    assert store.try_acquire(DEP, None, 1000, 900, later, ticket="new") == 0.0  # "old" aged out
    store.give_back(DEP, "old", 600, None)  # must not free 600 of "new"'s tokens
    assert store.try_acquire(DEP, None, 1000, 200, later + 1) > 0


def test_a_given_back_probe_lets_the_next_caller_probe(store: HealthStore) -> None:
    store.record_failure(DEP, AuthFailed("bad key"), T0, POLICY)  # opens at once
    half_open = T0 + 30
    assert store.claim_probe(DEP, half_open)
    assert store.snapshot([DEP], half_open + 1).get(DEP).circuit == "open"  # probe in flight
    assert not store.claim_probe(DEP, half_open + 1)

    store.give_back(DEP, None, 0, half_open)

    assert store.snapshot([DEP], half_open + 2).get(DEP).circuit == "half_open"
    assert store.claim_probe(DEP, half_open + 2)


def test_an_old_probe_cannot_end_a_newer_lease(store: HealthStore) -> None:
    store.record_failure(DEP, AuthFailed("bad key"), T0, POLICY)
    assert store.claim_probe(DEP, T0 + 30)
    store.give_back(DEP, None, 0, T0 + 30)
    assert store.claim_probe(DEP, T0 + 31)  # a new prober
    store.give_back(DEP, None, 0, T0 + 30)  # the first one again: not its lease any more
    assert not store.claim_probe(DEP, T0 + 32)


def test_a_probe_claimed_for_a_deployment_without_rate_headroom_is_given_back(
    store: HealthStore,
) -> None:
    dep = LLMModelConfig(name="gpt-x", provider="openai", rpm=1)
    cand = Candidate(dep, "gpt-x", False, 10, 10, None)
    assert store.try_acquire(dep.deployment_id, 1, None, 1, T0 + 29) == 0.0  # window full
    store.record_failure(dep.deployment_id, AuthFailed("bad key"), T0, POLICY)

    assert take_slot(store, cand, "half_open", T0 + 30, probe_wait_s=5.0) > 0  # must wait

    assert store.claim_probe(dep.deployment_id, T0 + 31)  # the lease was not kept


def test_take_slot_then_give_back_leaves_nothing_held(store: HealthStore) -> None:
    dep = LLMModelConfig(name="gpt-x", provider="openai", rpm=1, tpm=100)
    cand = Candidate(dep, "gpt-x", False, 40, 60, None)
    store.record_failure(dep.deployment_id, AuthFailed("bad key"), T0, POLICY)
    hold = take_slot(store, cand, "half_open", T0 + 30, probe_wait_s=5.0)
    assert isinstance(hold, Hold) and hold.tokens == 100 and hold.probe_claimed_at == T0 + 30

    give_back(store, hold)

    assert store.claim_probe(dep.deployment_id, T0 + 31)
    assert store.try_acquire(dep.deployment_id, 1, 100, 100, T0 + 31) == 0.0


# ---- confirm: the cooldown read atomically with keeping the slot, right before the call ----


def test_confirm_keeps_the_slot_when_nothing_cools_down(store: HealthStore) -> None:
    assert store.try_acquire(DEP, 1, None, 0, T0, ticket="a") == 0.0
    assert store.confirm(DEP, "a", 0, None, T0 + 0.5) == 0.0
    assert store.try_acquire(DEP, 1, None, 0, T0 + 1) > 0  # "a" still holds the only slot
    assert store.confirm("never/seen", "x", 0, None, T0) == 0.0


def test_a_429_after_admission_takes_the_slot_back(store: HealthStore) -> None:
    assert store.try_acquire(DEP, 1, 1000, 400, T0, ticket="a") == 0.0
    # the 429 (retry-after: 1) lands while "a" is reserving its quota
    store.record_failure(DEP, RateLimited("429", status=429, retry_after=1.0), T0 + 0.1, POLICY)
    wait = store.confirm(DEP, "a", 400, None, T0 + 0.3)
    assert wait == pytest.approx(0.8)
    # the slot and its tokens are free again; the cooldown still refuses new slots until T0+1.1
    assert store.try_acquire(DEP, 1, 1000, 1000, T0 + 0.5) == pytest.approx(0.6)
    assert store.try_acquire(DEP, 1, 1000, 1000, T0 + 1.2, ticket="b") == 0.0


def test_confirm_refused_ends_the_probe_lease_too(store: HealthStore) -> None:
    store.record_failure(DEP, AuthFailed("bad key"), T0, POLICY)  # opens at once
    half_open = T0 + 30
    assert store.claim_probe(DEP, half_open)
    assert store.try_acquire(DEP, None, None, 0, half_open, ticket="p") == 0.0
    store.record_failure(DEP, RateLimited("429", retry_after=2.0), half_open, POLICY)
    assert store.confirm(DEP, "p", 0, half_open, half_open + 0.1) > 0
    assert store.snapshot([DEP], half_open + 3).get(DEP).circuit == "half_open"


def test_confirm_slot_passes_the_hold(store: HealthStore) -> None:
    assert store.try_acquire(DEP, 1, None, 0, T0, ticket="h") == 0.0
    hold = Hold(DEP, "h", 0, None)
    store.record_failure(DEP, RateLimited("429", retry_after=1.0), T0, POLICY)
    assert confirm_slot(store, hold, T0 + 0.2) == pytest.approx(0.8)
    assert confirm_slot(store, hold, T0 + 1.5) == 0.0  # cooled down: the call may go
