"""Keys with rotation through the queue's path (issue 20), with real Redis, Postgres and the
simulator: each key of a deployment has its own rate-limit bucket and its own 429 cooldown.

Which key each request carried is read off the runtime's HTTP client (a request hook keeping
only key fingerprints, as tests/providers/test_key_rotation.py does).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from helpers.jobs import insert_jobs, spec_for
from helpers.llm_config import model

from workers.pipeline import run_job
from workers.providers.keys import fingerprint, forget_revoked
from workers.runtime import Runtime

K1 = "sk-bucket-one-1111aaaa2222"
K2 = "sk-bucket-two-3333bbbb4444"
DEP = "openai/m"


@pytest.fixture(autouse=True)
def _fresh_pools() -> Any:
    forget_revoked()
    yield
    forget_revoked()


def _now() -> datetime:
    return datetime.now(UTC)


def record_keys(rt: Runtime) -> list[str]:
    """The fingerprint of the key each request of `rt` carries, in order (never the key)."""
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append(fingerprint(request.headers["authorization"].removeprefix("Bearer ")))

    rt.client.event_hooks = {"request": [hook], "response": []}
    return seen


def run_all(rt: Runtime, n: int, tenant: str = "t") -> list[str]:
    _, jobs = insert_jobs(rt.engine, [spec_for(f"job {i}") for i in range(n)], "m", tenant=tenant)
    return [run_job(j, rt, _now()).status for j in jobs]


@pytest.mark.parametrize(("keys", "served"), [([K1, K2], 4), ([K1], 2)])
def test_rpm_is_per_key(
    make_runtime: Any, sim: Any, redis_url: str, keys: list[str], served: int
) -> None:
    rt = make_runtime([model("m", "openai", api_keys=keys, rpm=2)], redis_url=redis_url)
    seen = record_keys(rt)

    statuses = run_all(rt, 5)

    assert statuses.count("succeeded") == served  # rpm: 2 is each key's, within one minute
    assert sim.stats()["total_requests"] == served  # the rest were never sent
    if len(keys) == 2:
        assert sorted(seen) == sorted([fingerprint(K1), fingerprint(K2)] * 2)
        client = redis.Redis.from_url(redis_url)
        try:  # one window per key, named by fingerprint; the deployment's own stays empty
            for k in keys:
                assert client.zcard(f"llmq:h:{{{DEP}}}:{fingerprint(k)}:rq") == 2
            assert client.zcard(f"llmq:h:{{{DEP}}}:rq") == 0
            assert not any(k.encode() in key for key in client.keys("*") for k in keys)
        finally:
            client.close()
    else:
        assert seen == [fingerprint(K1)] * 2
        client = redis.Redis.from_url(redis_url)
        try:  # a single key: the deployment's bucket, exactly as before
            assert client.zcard(f"llmq:h:{{{DEP}}}:rq") == 2
        finally:
            client.close()


def test_a_429_on_one_key_leaves_the_other_serving(
    make_runtime: Any, sim: Any, redis_url: str
) -> None:
    rt = make_runtime([model("m", "openai", api_keys=[K1, K2])], redis_url=redis_url)
    seen = record_keys(rt)
    sim.configure("openai", rate_429=1.0, retry_after_s=30)
    assert run_all(rt, 1) == ["retry_later"]
    [throttled] = seen
    sim.configure("openai", rate_429=0.0)

    assert run_all(rt, 4) == ["succeeded"] * 4  # no wait: the other key serves at once

    other = ({fingerprint(K1), fingerprint(K2)} - {throttled}).pop()
    assert seen[1:] == [other] * 4  # nothing reached the provider on the cooling key
    assert [e["status"] for e in sim.log("openai")] == [429, 200, 200, 200, 200]


def test_a_429_on_the_only_key_still_holds_the_deployment(
    make_runtime: Any, sim: Any, redis_url: str
) -> None:
    rt = make_runtime([model("m", "openai", api_keys=[K1])], redis_url=redis_url)
    sim.configure("openai", rate_429=1.0, retry_after_s=30)
    assert run_all(rt, 1) == ["retry_later"]
    sim.configure("openai", rate_429=0.0)
    assert run_all(rt, 2) != ["succeeded"] * 2
    assert sim.stats()["total_requests"] == 1  # still cooling down: nothing more was sent
