"""Limits the simulator enforces itself: rpm/tpm sliding windows, concurrency, headers."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
import pytest
from sim_helpers import build, send

from simulator.limits import SlidingWindow
from simulator.providers.base import go_duration
from simulator.server import RunningSimulator


def test_rpm_limit_enforced(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("openai", rpm=3)
    statuses = [send(client, "openai").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = send(client, "openai")
    assert limited.status_code == 429
    err = limited.json()["error"]
    assert (err["type"], err["code"]) == ("requests", "rate_limit_exceeded")
    wait = float(limited.headers["retry-after"])
    assert 59 < wait <= 60
    assert abs(int(limited.headers["retry-after-ms"]) - wait * 1000) <= 1
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    entry = sim.log(provider="openai")[-1]
    assert entry["kind"] == "rpm" and 59 < entry["retry_after"] <= 60
    assert sim.stats()["providers"]["openai"]["by_status"] == {"200": 3, "429": 1}
    assert send(client, "anthropic").status_code == 200  # other providers unaffected


def test_rejected_requests_do_not_count(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("cohere", rpm=1)
    assert send(client, "cohere").status_code == 200
    for _ in range(5):
        assert send(client, "cohere").status_code == 429
    sim.reset()  # clears windows too
    assert send(client, "cohere").status_code == 200


def test_tpm_limit_enforced(sim: RunningSimulator, client: httpx.Client) -> None:
    # each request: 8 prompt + 24 completion (16 + 8 % 17) = 32 tokens
    sim.configure("anthropic", tpm=100)
    assert [send(client, "anthropic").status_code for _ in range(3)] == [200, 200, 200]
    limited = send(client, "anthropic")
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert sim.log(provider="anthropic")[-1]["kind"] == "tpm"


def test_per_model_rpm_has_its_own_window(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("google", models={"gemini-small": {"rpm": 1}})
    assert send(client, "google", model="gemini-small").status_code == 200
    limited = send(client, "google", model="gemini-small")
    assert limited.status_code == 429
    delay = limited.json()["error"]["details"][-1]["retryDelay"]
    assert delay.endswith("s") and 59 < float(delay[:-1]) <= 60
    assert send(client, "google", model="gemini-big").status_code == 200


def test_sliding_window_expiry() -> None:
    window = SlidingWindow()
    for t in (0.0, 10.0, 20.0):
        assert window.blocked(t, 3, None, 1) is None
        window.admit(t, 1)
    wait, what, limit = window.blocked(30.0, 3, None, 1) or (0.0, "", 0)
    assert (round(wait, 3), what, limit) == (30.0, "requests", 3)
    assert window.blocked(60.0, 3, None, 1) is None  # the t=0 entry has left the window
    window.admit(60.0, 1)
    wait, _, _ = window.blocked(61.0, 3, None, 1) or (0.0, "", 0)
    assert round(wait, 3) == 9.0
    tokens = SlidingWindow()
    tokens.admit(0.0, 60)
    tokens.admit(5.0, 30)
    assert tokens.blocked(6.0, None, 100, 20) == (54.0, "tokens", 100)
    assert tokens.blocked(6.0, None, 100, 10) is None
    assert tokens.blocked(6.0, None, 100, 200) == (60.0, "tokens", 100)


def test_openai_rate_limit_headers(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("openai", rpm=10, tpm=1000)
    response = send(client, "openai")
    headers = response.headers
    assert headers["x-ratelimit-limit-requests"] == "10"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert headers["x-ratelimit-remaining-requests"] == "9"
    assert headers["x-ratelimit-remaining-tokens"] == "968"
    assert headers["x-ratelimit-reset-requests"] in ("59.999s", "1m0s")
    assert go_duration(0.012) == "12ms" and go_duration(1) == "1s"
    assert go_duration(360) == "6m0s" and go_duration(1.5) == "1.5s"
    default = send(client, "huggingface")
    assert "x-ratelimit-limit-requests" not in default.headers


def test_anthropic_rate_limit_headers(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("anthropic", rpm=50, tpm=40_000)
    headers = send(client, "anthropic").headers
    assert headers["anthropic-ratelimit-requests-limit"] == "50"
    assert headers["anthropic-ratelimit-requests-remaining"] == "49"
    assert headers["anthropic-ratelimit-tokens-limit"] == "40000"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "39000"
    reset = datetime.strptime(headers["anthropic-ratelimit-requests-reset"], "%Y-%m-%dT%H:%M:%SZ")
    delta = reset.replace(tzinfo=UTC).timestamp() - time.time()
    assert 55 < delta <= 61


async def _burst(url: str, provider: str, n: int) -> list[int]:
    path, headers, body = build(provider)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
        replies = await asyncio.gather(*(http.post(path, json=body) for _ in range(n)))
    return [r.status_code for r in replies]


def test_concurrency_reject_mode(sim: RunningSimulator) -> None:
    sim.configure("cohere", latency_ms=300, max_concurrency=2, concurrency_mode="reject")
    statuses = asyncio.run(_burst(sim.url, "cohere", 5))
    assert sorted(statuses) == [200, 200, 429, 429, 429]
    kinds = sorted(e["kind"] for e in sim.log(provider="cohere"))
    assert kinds == ["concurrency"] * 3 + ["ok"] * 2


def test_concurrency_queue_mode_waits(sim: RunningSimulator) -> None:
    sim.configure("local", latency_ms=200, max_concurrency=2)
    start = time.perf_counter()
    statuses = asyncio.run(_burst(sim.url, "local", 4))
    elapsed = time.perf_counter() - start
    assert statuses == [200] * 4
    assert elapsed >= 0.4  # two waves of two


@pytest.mark.parametrize("mode", ["queue", "reject"])
def test_concurrency_mode_validated(sim: RunningSimulator, mode: str) -> None:
    sim.configure("openai", concurrency_mode=mode)
    with pytest.raises(httpx.HTTPStatusError):
        sim.configure("openai", concurrency_mode="drop")
