"""Control endpoints, configuration loading, and the command line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sim_helpers import send

from simulator.config import ProviderBehaviour, SimConfig
from simulator.server import RunningSimulator, start_in_thread

REPO = Path(__file__).resolve().parents[2]


def test_health(client: httpx.Client) -> None:
    response = client.get("/_sim/health")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_stats_shape(sim: RunningSimulator, client: httpx.Client) -> None:
    empty = {"providers": {}, "total_requests": 0, "total_served": 0, "billing": [], "billed": []}
    assert sim.stats() == empty
    send(client, "openai", model="gpt-a")
    send(client, "openai", model="gpt-a", key="bad-k")
    send(client, "google", model="gemini-b")
    stats = sim.stats()
    assert stats["total_requests"] == 3 and stats["total_served"] == 2
    openai = stats["providers"]["openai"]
    assert set(openai) == {"requests", "by_status", "by_kind", "models"}
    assert openai["by_status"] == {"200": 1, "401": 1}
    assert openai["models"]["gpt-a"]["served"] == 1
    assert stats["providers"]["google"]["models"]["gemini-b"]["prompt_tokens"] == 8
    # issue 18: what each served call billed, per lane (no prices configured: 0)
    assert [(r["provider"], r["lane"], r["requests"]) for r in stats["billing"]] == [
        ("google", "sync", 1),
        ("openai", "sync", 1),
    ]


def test_log_entries_filters_and_limit(sim: RunningSimulator, client: httpx.Client) -> None:
    before = time.time()
    for i in range(5):
        send(client, "openai", model=f"m{i}")
    send(client, "ollama", model="llama")
    log = sim.log()
    assert len(log) == 6
    assert set(log[0]) == {"t", "provider", "model", "status", "retry_after", "kind", "request_id"}
    assert all(before <= e["t"] <= time.time() for e in log)
    assert [e["t"] for e in log] == sorted(e["t"] for e in log)
    last_two = sim.log(provider="openai", limit=2)
    assert [e["model"] for e in last_two] == ["m3", "m4"]
    assert sim.log(model="llama")[0]["provider"] == "ollama"
    assert client.get("/_sim/log", params={"limit": "x"}).status_code == 400


def test_log_is_a_bounded_ring_buffer(client: httpx.Client) -> None:
    with start_in_thread(SimConfig(log_size=3)) as small:
        for i in range(5):
            send(httpx.Client(base_url=small.url), "local", model=f"m{i}")
        assert [e["model"] for e in small.log()] == ["m2", "m3", "m4"]
        assert small.stats()["total_requests"] == 5


def test_config_partial_update_and_get(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("openai", latency_ms=5, rate_500=0.1)
    sim.configure("openai", rate_429=0.2)
    config = client.get("/_sim/config").json()
    openai = config["providers"]["openai"]
    assert (openai["latency_ms"], openai["rate_500"], openai["rate_429"]) == (5, 0.1, 0.2)
    assert "anthropic" not in config["providers"]  # still on the default
    response = client.post(
        "/_sim/config",
        json={"providers": {"cohere": {"down": True}}, "default": {"latency_ms": 1}, "seed": 9},
    )
    assert response.status_code == 200
    config = response.json()["config"]
    assert config["providers"]["cohere"]["down"] is True
    assert config["default"]["latency_ms"] == 1 and config["seed"] == 9


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "nope", "latency_ms": 1},
        {"provider": "openai", "rate_500": 2},
        {"provider": "openai", "unknown_field": 1},
        {"providers": {"nope": {}}},
        [1, 2],
    ],
)
def test_config_rejects_bad_input(client: httpx.Client, body: object) -> None:
    response = client.post("/_sim/config", json=body)
    assert response.status_code == 400
    assert response.json()["ok"] is False


def test_reset_keeps_or_restores_behaviour(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("openai", down=True)
    send(client, "openai")
    client.post("/_sim/reset")
    assert sim.stats()["total_requests"] == 0 and sim.log() == []
    assert send(client, "openai").status_code == 503
    client.post("/_sim/reset", json={"behaviour": True})
    assert send(client, "openai").status_code == 200


def test_start_config_is_restored_on_behaviour_reset() -> None:
    config = SimConfig(providers={"anthropic": ProviderBehaviour(rate_529=1.0)})
    with start_in_thread(config) as custom:
        http = httpx.Client(base_url=custom.url)
        assert send(http, "anthropic").status_code == 529
        custom.configure("anthropic", rate_529=0.0)
        assert send(http, "anthropic").status_code == 200
        custom.reset(behaviour=True)
        assert send(http, "anthropic").status_code == 529


def test_config_from_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text(
        "seed: 3\n"
        "default:\n  latency_ms: 2\n"
        "providers:\n"
        "  openai:\n    rpm: 100\n    models:\n      gpt-x:\n        rate_500: 1.0\n"
    )
    config = SimConfig.from_file(path)
    assert config.seed == 3 and config.default.latency_ms == 2
    assert config.behaviour("openai").rpm == 100
    assert config.behaviour("cohere").latency_ms == 2
    resolved = config.behaviour("openai").resolve("gpt-x")
    assert resolved.rate_500 == 1.0 and resolved.rpm == 100
    assert config.behaviour("openai").resolve("tiny-gpt").context_window == 1000
    assert config.with_latency(7).behaviour("openai").latency_ms == 7


def test_running_simulator_helpers(sim: RunningSimulator) -> None:
    assert sim.url == f"http://127.0.0.1:{sim.port}"
    assert sim.api_base("openai") == sim.url + "/openai/v1"
    assert sim.api_base("ollama") == sim.url + "/ollama"


def test_cli_serves_and_prints_ready_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("providers:\n  openai:\n    down: true\n")
    with subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("simulator listening on http://127.0.0.1:")
            url = line.rsplit(" ", 1)[-1]
            with httpx.Client(base_url=url) as http:
                assert http.get("/_sim/health").json() == {"ok": True}
                assert send(http, "openai").status_code == 503
                assert send(http, "anthropic").status_code == 200
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert proc.returncode == 0
