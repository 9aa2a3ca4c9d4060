"""Injected faults: 429 + Retry-After, 500/503/529, malformed bodies, timeouts, down, latency."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sim_helpers import PROVIDERS, error_message, send

from simulator.server import RunningSimulator


@pytest.mark.parametrize("provider", PROVIDERS)
def test_injected_429_has_retry_hint(
    sim: RunningSimulator, client: httpx.Client, provider: str
) -> None:
    sim.configure(provider, rate_429=1.0, retry_after_s=2.5)
    response = send(client, provider)
    assert response.status_code == 429
    assert error_message(provider, response.json())
    if provider == "google":
        assert "retry-after" not in response.headers
        details = response.json()["error"]["details"]
        kinds = {d["@type"].rsplit(".", 1)[-1]: d for d in details}
        assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert kinds["RetryInfo"]["retryDelay"] == "2.500s"
        assert kinds["QuotaFailure"]["violations"][0]["quotaId"]
    else:
        assert response.headers["retry-after"] == "2.5"
        assert response.headers["retry-after-ms"] == "2500"
    entry = sim.log(provider=provider)[-1]
    assert (entry["status"], entry["retry_after"], entry["kind"]) == (429, 2.5, "injected")


def test_429_envelope_types(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("openai", rate_429=1.0, retry_after_s=1)
    sim.configure("anthropic", rate_429=1.0, retry_after_s=1)
    err = send(client, "openai").json()["error"]
    assert (err["type"], err["code"]) == ("requests", "rate_limit_exceeded")
    response = send(client, "anthropic")
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.headers["retry-after"] == "1"
    assert "anthropic-ratelimit-requests-remaining" in response.headers


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("field", "status"), [("rate_500", 500), ("rate_503", 503)])
def test_server_errors(
    sim: RunningSimulator, client: httpx.Client, provider: str, field: str, status: int
) -> None:
    sim.configure(provider, **{field: 1.0})
    response = send(client, provider)
    assert response.status_code == status
    assert error_message(provider, response.json())
    assert "retry-after" not in response.headers


@pytest.mark.parametrize("provider", PROVIDERS)
def test_529_is_anthropic_only(sim: RunningSimulator, client: httpx.Client, provider: str) -> None:
    sim.configure(provider, rate_529=1.0)
    response = send(client, provider)
    if provider == "anthropic":
        assert response.status_code == 529
        assert response.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    else:
        assert response.status_code == 503
    assert error_message(provider, response.json())


def test_google_server_statuses(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("google", rate_500=1.0)
    assert send(client, "google").json()["error"]["status"] == "INTERNAL"
    sim.configure("google", rate_500=0.0, rate_503=1.0)
    assert send(client, "google").json()["error"]["status"] == "UNAVAILABLE"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_body(sim: RunningSimulator, client: httpx.Client, provider: str) -> None:
    sim.configure(provider, rate_malformed=1.0)
    response = send(client, provider)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    stats = sim.stats()
    assert stats["total_served"] == 0
    assert stats["providers"][provider]["by_kind"] == {"malformed": 1}


def test_timeout_holds_then_504(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("anthropic", rate_timeout=1.0, timeout_hold_s=0.3)
    start = time.perf_counter()
    response = send(client, "anthropic")
    assert time.perf_counter() - start >= 0.3
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"
    sim.configure("openai", rate_timeout=1.0, timeout_hold_s=5.0)
    with pytest.raises(httpx.ReadTimeout):
        send(httpx.Client(base_url=sim.url, timeout=0.2), "openai")
    assert sim.log(provider="openai")[-1]["status"] == 504  # recorded before the hold


@pytest.mark.parametrize("provider", PROVIDERS)
def test_down_is_503(sim: RunningSimulator, client: httpx.Client, provider: str) -> None:
    sim.configure(provider, down=True)
    response = send(client, provider)
    assert response.status_code == 503
    assert error_message(provider, response.json())
    assert sim.log(provider=provider)[-1]["kind"] == "down"


def test_local_down_says_loading_model(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("local", down=True)
    err = send(client, "local").json()["error"]
    assert (err["code"], err["message"], err["type"]) == (503, "Loading model", "unavailable_error")


def test_latency_is_applied(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("cohere", latency_ms=150)
    start = time.perf_counter()
    assert send(client, "cohere").status_code == 200
    assert time.perf_counter() - start >= 0.15
    start = time.perf_counter()
    send(client, "openai")
    assert time.perf_counter() - start < 0.15


def test_per_model_override_fails_only_that_model(
    sim: RunningSimulator, client: httpx.Client
) -> None:
    sim.configure("openai", models={"gpt-bad": {"rate_500": 1.0}, "gpt-slow*": {"down": True}})
    assert send(client, "openai", model="gpt-bad").status_code == 500
    assert send(client, "openai", model="gpt-good").status_code == 200
    assert send(client, "openai", model="gpt-slow-2").status_code == 503
    sim.configure("openai", models={"gpt-bad": None})
    assert send(client, "openai", model="gpt-bad").status_code == 200
    assert send(client, "openai", model="gpt-slow-2").status_code == 503


def test_failure_sequence_is_reproducible_with_seed(
    sim: RunningSimulator, client: httpx.Client
) -> None:
    def run() -> list[int]:
        return [send(client, "openai").status_code for _ in range(40)]

    sim.configure("openai", rate_500=0.3, rate_429=0.2, retry_after_s=0)
    first = run()
    sim.reset()  # reseeds the RNG, keeps behaviour
    assert run() == first
    assert {200, 429, 500} <= set(first)
    client.post("/_sim/config", json={"seed": 12345})
    sim.reset()
    assert run() != first


def test_retry_after_visible_in_log(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("openai", rate_429=1.0, retry_after_s=0.2)
    first = send(client, "openai")
    assert first.status_code == 429
    sim.configure("openai", rate_429=0.0)
    time.sleep(int(first.headers["retry-after-ms"]) / 1000)
    assert send(client, "openai").status_code == 200
    log = sim.log(provider="openai")
    limited = [e for e in log if e["status"] == 429]
    later = [e for e in log if e["t"] > limited[0]["t"]]
    assert later and all(e["t"] >= limited[0]["t"] + limited[0]["retry_after"] for e in later)
