"""`llmq providers`, `llmq metrics` and `llmq flower` as real subprocesses against the fixture
ledger (conftest.py `ledger`) and a real Redis health store."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
import redis
from helpers.llm_config import model, write_llm_config
from helpers.worker import worker_env

from .conftest import DEP_A, DEP_B

SIM = "http://127.0.0.1:9"  # never contacted: these commands read the ledger and Redis only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def llmq(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmq.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
        cwd=Path(env["LLMQ_CONFIG"]).parent,
    )  # fmt: skip


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def hook() -> Iterator[str]:
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


def _env(tmp_path: Path, pg: str, redis_url: str, monitoring: dict) -> dict[str, str]:
    models = [
        model("gpt-a", "openai", model_id="gpt-a"),
        model("claude-b", "anthropic", model_id="claude-b"),
    ]
    cfg = write_llm_config(tmp_path / "llm_config.yaml", SIM, models, monitoring=monitoring)
    return worker_env(pg, redis_url, cfg)


def test_providers_json_and_check(ledger, clean_db, redis_url, tmp_path, hook) -> None:  # type: ignore[no-untyped-def]
    from core.errors import AuthFailed
    from schemas.config import RoutingSettings
    from workers.routing.health import RedisHealthStore

    store = RedisHealthStore(redis.Redis.from_url(redis_url))
    store.record_success(DEP_B, 120.0, None, time.time())
    store.record_failure(DEP_A, AuthFailed("no", provider="openai", status=401), time.time(),
                         RoutingSettings())  # fmt: skip
    mon = {"failure_rate_alert": 0.3, "quota_use_alert": 0.2, "webhook_url": hook}
    env = _env(tmp_path, clean_db, redis_url, mon)

    out = llmq(env, "providers", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    rows = {r["deployment"]: r for r in doc["providers"] if r["configured"]}
    a, b = rows[DEP_A], rows[DEP_B]
    assert a["circuit"] == "open" and a["available"] is False and a["has_key"] is True
    assert b["circuit"] == "closed" and b["available"] is True
    assert b["p50_ms"] == 120.0 and b["success_rate"] == 1.0
    # today's ledger figures (see conftest: 5 finished calls on A, 17 + 12 tokens)
    assert a["requests_today"] == 5 and a["tokens_today"] == 29
    assert float(a["cost_today_usd"]) == pytest.approx(0.0015)
    unconfigured = {r["provider"] for r in doc["providers"] if not r["configured"]}
    assert {"google", "cohere", "huggingface", "local"} <= unconfigured
    kinds = {(al["kind"], al["subject"]) for al in doc["alerts"]}
    # openai's failure rate comes from the health store when it has calls: 1 judged call is
    # below the minimum to judge, so only the quota alert (0.25 of 1.00 USD >= 0.2) fires.
    assert ("quota_use", "acme/day") in kinds
    assert "warning: tenant acme" in out.stderr
    assert _Hook.received and _Hook.received[0]["alerts"]

    check = llmq(env, "providers", "--check")
    assert check.returncode == 1
    assert "llmq providers" in check.stdout  # the table is still printed


def test_providers_check_passes_under_thresholds(ledger, clean_db, redis_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path, clean_db, redis_url, {"failure_rate_alert": 0.9, "quota_use_alert": 0.9})
    out = llmq(env, "providers", "--check")
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr


def test_providers_failure_rate_from_ledger(ledger, clean_db, redis_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Redis is empty: today's ledger decides (openai: 2 failed of 5 finished calls = 40 %).
    env = _env(tmp_path, clean_db, redis_url, {"failure_rate_alert": 0.4, "quota_use_alert": 0.9})
    out = llmq(env, "providers", "--json", "--check")
    assert out.returncode == 1
    alerts = json.loads(out.stdout)["alerts"]
    assert [(a["kind"], a["subject"]) for a in alerts] == [("provider_failure_rate", "openai")]


def test_metrics_endpoint_equals_ledger(ledger, clean_db, redis_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine, text

    env = _env(tmp_path, clean_db, redis_url, {})
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmq.cli", "metrics", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        body = scrape(f"http://127.0.0.1:{port}/metrics", proc)
    finally:
        proc.kill()
        proc.wait(10)
    eng = create_engine(clean_db)
    with eng.connect() as conn:
        sql = text(
            "SELECT provider, model, sum(prompt_tokens), sum(completion_tokens), "
            "coalesce(sum(cost_usd), 0), count(*) FROM attempts "
            "WHERE outcome IN ('succeeded','failed','superseded','lost') GROUP BY 1, 2"
        )
        rows = conn.execute(sql).all()
    eng.dispose()
    samples = parse(body)
    assert rows
    for provider, mdl, prompt, completion, cost, calls in rows:
        lab = f'model="{mdl}",provider="{provider}"'
        assert samples[f'llmq_tokens_total{{kind="prompt",{lab}}}'] == prompt
        assert samples[f'llmq_tokens_total{{kind="completion",{lab}}}'] == completion
        assert samples[f"llmq_cost_usd_total{{{lab}}}"] == pytest.approx(float(cost))
        assert samples[f"llmq_provider_latency_seconds_count{{{lab}}}"] == calls
    assert samples['llmq_circuit_state{deployment="openai/gpt-a",state="closed"}'] == 1


def scrape(url: str, proc: subprocess.Popen, timeout_s: float = 30) -> str:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"metrics server exited: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            resp = httpx.get(url, timeout=5)
            if resp.status_code == 200:
                return resp.text
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout_s}s")


def parse(body: str) -> dict[str, float]:
    """`name{labels sorted}` -> value, for samples of the text exposition format."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_flower_refuses_public_bind_without_auth(tmp_path, clean_db, redis_url) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path, clean_db, redis_url, {})
    env.pop("FLOWER_BASIC_AUTH", None)
    out = llmq(env, "flower", "--address", "0.0.0.0", "--port", str(free_port()))
    assert out.returncode == 2
    assert "basic-auth" in out.stderr
