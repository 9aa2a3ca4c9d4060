"""Keys with rotation through `call_model` (issue 20), against the simulator over HTTP: each key
of a deployment has its own rate-limit bucket and 429 cooldown, as in the queue's path
(tests/pipeline/test_key_buckets.py runs the same cases through Redis and the ledger).

Which key each request carried is read off the HTTP client (a request hook keeping only key
fingerprints, as tests/providers/test_key_rotation.py does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.errors import LLMProviderError
from schemas import LLMConfig
from schemas.job import ChatMessage
from workers.providers import LLMProviderManager, build_adapter
from workers.providers.base import ProviderRequest
from workers.providers.keys import fingerprint, forget_revoked

K1 = "sk-direct-one-1111aaaa2222"
K2 = "sk-direct-two-3333bbbb4444"


@pytest.fixture(autouse=True)
def _fresh_pools() -> Iterator[None]:
    forget_revoked()
    yield
    forget_revoked()


def manager_for(sim: Any, keys: list[str], seen: list[str], **fields: Any) -> LLMProviderManager:
    def hook(request: httpx.Request) -> None:
        seen.append(fingerprint(request.headers["authorization"].removeprefix("Bearer ")))

    config = LLMConfig.model_validate(
        {
            "providers": {"openai": {"api_base": sim.api_base("openai")}},
            "models": [{"name": "m", "provider": "openai", "api_keys": keys, **fields}],
        }
    )
    client = httpx.Client(event_hooks={"request": [hook]}, timeout=30)
    return LLMProviderManager(config, client=client, env={}, max_retries=0, sleep=lambda _: None)


@pytest.mark.parametrize(("keys", "served"), [([K1, K2], 4), ([K1], 2)])
def test_rpm_is_per_key(sim: Any, keys: list[str], served: int) -> None:
    seen: list[str] = []
    manager = manager_for(sim, keys, seen, rpm=2)
    try:
        for _ in range(served):
            assert manager.call_model(model_name="m", prompt="hi")["response"]
        with pytest.raises(LLMProviderError):  # every key's window is full: not sent
            manager.call_model(model_name="m", prompt="hi")
    finally:
        manager.close()
    assert sim.stats()["total_requests"] == served
    assert sorted(seen) == sorted(fingerprint(k) for k in keys for _ in range(2))


def test_a_429_on_one_key_leaves_the_other_serving(sim: Any) -> None:
    seen: list[str] = []
    manager = manager_for(sim, [K1, K2], seen)
    try:
        sim.configure("openai", rate_429=1.0, retry_after_s=30)
        with pytest.raises(LLMProviderError):
            manager.call_model(model_name="m", prompt="hi")
        [throttled] = seen
        sim.configure("openai", rate_429=0.0)
        for _ in range(3):
            assert manager.call_model(model_name="m", prompt="hi")["response"]
    finally:
        manager.close()
    other = ({fingerprint(K1), fingerprint(K2)} - {throttled}).pop()
    assert seen[1:] == [other] * 3
    assert [e["status"] for e in sim.log("openai")] == [429, 200, 200, 200]


def test_the_call_uses_the_key_admission_chose(sim: Any) -> None:
    """The key whose bucket holds the slot is the key sent; an unknown or revoked fingerprint
    falls back to the pool's turn (the call still goes, with a live key)."""
    seen: list[str] = []
    manager = manager_for(sim, [K1, K2], seen)
    adapter = build_adapter(manager.config.models[0], manager.config, manager._client)
    req = ProviderRequest("m", (ChatMessage(role="user", content="hi"),), max_tokens=8)
    try:
        for _ in range(3):
            adapter.complete(req, fingerprint(K2))
        adapter.complete(req, "00000000")
    finally:
        manager.close()
    assert seen[:3] == [fingerprint(K2)] * 3
    assert seen[3] in {fingerprint(K1), fingerprint(K2)}
