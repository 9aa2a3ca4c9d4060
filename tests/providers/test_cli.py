"""`llmq check-config` and `llmq simulate` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from llmq.cli import app
from schemas import LLMConfig, LLMModelConfig
from workers.providers import build_adapter

from .simhelp import request

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "examples" / "llm_config.yaml")


def test_check_config_table_never_prints_keys():
    result = CliRunner().invoke(app, ["check-config", "--config", EXAMPLE])
    assert result.exit_code == 0, result.output
    for deployment in ("openai/gpt-4o-mini", "hf/gpt-4o-mini", "anthropic/claude-haiku-4-5"):
        assert deployment in result.output
    assert "present" in result.output
    for secret in ("sk-simulator", "sk-ant-simulator", "hf_simulator"):
        assert secret not in result.output


def test_check_config_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env here
    path = tmp_path / "c.yaml"
    path.write_text(
        "models:\n  - {name: gpt-4o-mini, provider: openai}\n"
        "  - {name: mine, provider: local, model_id: whatever-7b}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))}
    result = CliRunner(env=env).invoke(app, ["check-config", "--json", "--config", str(path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["deployment"]: r for r in data["deployments"]}
    openai, local = rows["openai/gpt-4o-mini"], rows["local/whatever-7b"]
    assert (openai["key_present"], openai["price_known"], openai["key_env"]) == (
        False,
        True,
        "OPENAI_API_KEY",
    )
    assert (local["key_present"], local["price_known"]) == (True, False)
    assert openai["base_url"] == "https://api.openai.com/v1"


def test_check_config_invalid(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - {name: a, provider: mistral}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert "models[0].provider" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_simulate_serves_until_terminated():
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmq.cli",
            "simulate",
            "--port",
            str(port),
            "--latency-ms",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        line = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in line, line
        config = LLMConfig(
            providers={"cohere": {"api_base": f"http://127.0.0.1:{port}/cohere", "api_key": "k"}},
            models=[LLMModelConfig(name="command-r", provider="cohere")],
        )
        with httpx.Client() as client:
            reply = build_adapter(config.models[0], config, client).complete(request("command-r"))
        assert reply.text.startswith("sim:")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
