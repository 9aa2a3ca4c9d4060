"""Keys with rotation (issue 20): each API key of a deployment has its own rate-limit bucket
(`dep#fingerprint`) and its own 429 cooldown; the circuit, the probe lease and 5xx cooldowns
stay per deployment. The same behaviour from the in-memory store and from real Redis; time is
synthetic.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from core.errors import ProviderUnavailable, RateLimited
from schemas.config import LLMModelConfig, RoutingSettings
from workers.providers.keys import KeyPool, fingerprint, forget_revoked
from workers.routing._health_model import bucket_id, split_bucket
from workers.routing.health import HealthStore, MemoryHealthStore, RedisHealthStore
from workers.routing.select import Candidate
from workers.routing.slots import Hold, confirm_slot, give_back, take_slot

T0 = 1_700_000_000.0
POLICY = RoutingSettings(circuit_open_s=30.0, circuit_failures=2)
KA, KB = "sk-bucket-aaaa-1111", "sk-bucket-bbbb-2222"
FA, FB = fingerprint(KA), fingerprint(KB)
DEP = "openai/gpt-x"
A, B = bucket_id(DEP, FA), bucket_id(DEP, FB)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[HealthStore]:
    if request.param == "memory":
        yield MemoryHealthStore()
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisHealthStore(client)
    client.close()


@pytest.fixture(autouse=True)
def _fresh_pools() -> Iterator[None]:
    forget_revoked()
    yield
    forget_revoked()


def candidate(rpm: int | None = 1, tpm: int | None = None) -> Candidate:
    dep = LLMModelConfig(name="gpt-x", provider="openai", rpm=rpm, tpm=tpm)
    return Candidate(dep, "gpt-x", False, 10, 10, None)


@pytest.mark.parametrize(
    ("dep_id", "key", "bucket"),
    [
        (DEP, None, DEP),
        (DEP, "", DEP),
        (DEP, FA, f"{DEP}#{FA}"),
        ("azure/a#b", None, "azure/a#b"),  # a '#' not followed by 8 hex is part of the id
    ],
)
def test_bucket_ids_round_trip(dep_id: str, key: str | None, bucket: str) -> None:
    assert bucket_id(dep_id, key) == bucket
    assert split_bucket(bucket) == (dep_id, key or None)


def test_each_key_has_its_own_window(store: HealthStore) -> None:
    for bucket in (A, B):
        assert store.try_acquire(bucket, 2, None, 0, T0, ticket=f"{bucket}1") == 0.0
        assert store.try_acquire(bucket, 2, None, 0, T0 + 1, ticket=f"{bucket}2") == 0.0
        assert store.try_acquire(bucket, 2, None, 0, T0 + 2) > 0  # this key's rpm is used up
    assert store.try_acquire(DEP, 2, None, 0, T0 + 3) == 0.0  # the deployment's own is apart
    store.give_back(A, f"{A}1", 0, None)  # giving back frees that key's slot only
    assert store.try_acquire(A, 2, None, 0, T0 + 4) == 0.0
    assert store.try_acquire(B, 2, None, 0, T0 + 4) > 0


def test_a_429_cools_only_the_key_that_got_it(store: HealthStore) -> None:
    store.record_failure(A, RateLimited("429", status=429, retry_after=5.0), T0, POLICY)
    assert store.try_acquire(A, None, None, 0, T0 + 1) == pytest.approx(4.0)
    assert store.try_acquire(B, None, None, 0, T0 + 1) == 0.0
    # the deployment itself is not cooling down: routing keeps choosing it
    assert store.snapshot([DEP], T0 + 1).get(DEP).cooldown_until == 0.0
    assert store.try_acquire(A, None, None, 0, T0 + 5.1) == 0.0


def test_a_5xx_cooldown_and_the_circuit_stay_per_deployment(store: HealthStore) -> None:
    err = ProviderUnavailable("503", status=503, retry_after=5.0)
    store.record_failure(A, err, T0, POLICY)
    assert store.try_acquire(B, None, None, 0, T0 + 1) == pytest.approx(4.0)  # every key waits
    assert store.snapshot([DEP], T0 + 1).get(DEP).cooldown_until == pytest.approx(T0 + 5)
    store.record_failure(B, err, T0 + 6, POLICY)  # the second failure in a row, other key
    assert store.snapshot([DEP], T0 + 7).get(DEP).circuit == "open"


def test_a_success_on_a_key_closes_the_deployments_circuit(store: HealthStore) -> None:
    store.record_failure(A, ProviderUnavailable("500", status=500), T0, POLICY)
    store.record_failure(A, ProviderUnavailable("500", status=500), T0 + 1, POLICY)
    assert store.claim_probe(DEP, T0 + 40)
    store.record_success(B, 100.0, None, T0 + 41)
    assert store.snapshot([DEP], T0 + 42).get(DEP).circuit == "closed"


def test_confirm_reads_the_keys_cooldown_and_the_deployments(store: HealthStore) -> None:
    assert store.try_acquire(A, 1, None, 0, T0, ticket="a") == 0.0
    assert store.try_acquire(B, 1, None, 0, T0, ticket="b") == 0.0
    store.record_failure(A, RateLimited("429", status=429, retry_after=1.0), T0 + 0.1, POLICY)
    assert confirm_slot(store, Hold(DEP, "b", 0, None, FB, B), T0 + 0.2) == 0.0
    assert confirm_slot(store, Hold(DEP, "a", 0, None, FA, A), T0 + 0.2) == pytest.approx(0.9)
    assert store.try_acquire(A, 1, None, 0, T0 + 1.2) == 0.0  # "a" was given back
    store.record_failure(B, ProviderUnavailable("503", retry_after=2.0), T0 + 2, POLICY)
    assert confirm_slot(store, Hold(DEP, "b", 0, None, FB, B), T0 + 2.5) == pytest.approx(1.5)


def test_take_slot_rotates_and_skips_keys_without_headroom(store: HealthStore) -> None:
    pool = KeyPool([KA, KB], label=DEP)
    cand = candidate(rpm=2)
    keys = [take_slot(store, cand, "closed", T0 + i, 5.0, pool) for i in range(4)]
    assert all(isinstance(h, Hold) for h in keys)
    assert [h.key for h in keys if isinstance(h, Hold)] == [FA, FB, FA, FB]
    assert {h.slot_id for h in keys if isinstance(h, Hold)} == {A, B}
    # both windows full: the wait is the shortest of the keys' (A's first slot frees first)
    assert take_slot(store, cand, "closed", T0 + 10, 5.0, pool) == pytest.approx(61.0 - 10)
    store.record_failure(A, RateLimited("429", status=429, retry_after=30.0), T0 + 70, POLICY)
    # A cools down: every slot goes to B (its window is empty again) until A's Retry-After ends
    picked = [take_slot(store, cand, "closed", T0 + 70 + i, 5.0, pool) for i in range(2)]
    assert [h.key for h in picked if isinstance(h, Hold)] == [FB, FB]
    last = take_slot(store, cand, "closed", T0 + 72, 5.0, pool)
    assert isinstance(last, float) and last == pytest.approx(28.0)  # A's cooldown ends first
    give_back(store, picked[0])  # returned to B's window, not the deployment's
    again = take_slot(store, cand, "closed", T0 + 73, 5.0, pool)
    assert isinstance(again, Hold) and again.key == FB


def test_a_single_key_keeps_the_deployment_as_its_bucket(store: HealthStore) -> None:
    cand = candidate(rpm=1)
    pool = KeyPool([KA], label=DEP)  # e.g. one literal key; not rotating
    hold = take_slot(store, cand, "closed", T0, 5.0, pool)
    assert isinstance(hold, Hold) and hold.key is None and hold.slot_id == DEP
    assert take_slot(store, cand, "closed", T0 + 1, 5.0, None) > 0  # the same window


def test_a_probe_lease_is_ended_when_no_key_has_headroom(store: HealthStore) -> None:
    pool = KeyPool([KA, KB], label=DEP)
    cand = candidate(rpm=1)
    assert store.try_acquire(A, 1, None, 0, T0 + 29) == 0.0
    assert store.try_acquire(B, 1, None, 0, T0 + 29) == 0.0
    store.record_failure(A, ProviderUnavailable("500", status=500), T0, POLICY)
    store.record_failure(A, ProviderUnavailable("500", status=500), T0, POLICY)
    assert take_slot(store, cand, "half_open", T0 + 30, 5.0, pool) > 0
    assert store.claim_probe(DEP, T0 + 31)  # the lease was not kept
