"""Fixtures for the `llmq serve` tests: the real app under uvicorn on a free loopback port (in
a thread of the test process), real Celery worker subprocesses and the simulator (the
pipeline's `rig`), API keys made through the ledger, and official `openai` SDK clients.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest
import uvicorn
from helpers.llm_config import load_test_config, model
from sqlalchemy.orm import Session

from core.ledger import api_keys_repo
from llmq.serve.app import create_app
from llmq.serve.settings import ServeSettings
from tests.pipeline.conftest import WorkerRig, rig, sim, sim_session  # noqa: F401 - fixtures

MODELS = [model("m", "openai", is_default=True, input_cost_per_mtok="0.15",
                output_cost_per_mtok="0.6")]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """A running `llmq serve` app and what a test needs around it."""

    url: str  # base_url for the SDK: http://127.0.0.1:PORT/v1
    rig: WorkerRig
    server: uvicorn.Server
    thread: threading.Thread

    def key(self, tenant: str, name: str | None = None) -> str:
        with Session(self.rig.engine) as s, s.begin():
            _, key = api_keys_repo.create_key(s, tenant, name, datetime.now(UTC))
        return key

    def client(self, tenant: str = "team-a", **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=self.key(tenant), max_retries=0, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_serve(wrig: WorkerRig, settings: ServeSettings | None = None) -> Served:
    assert wrig.config_path is not None, "rig.configure() first"
    env = {
        "LLMQ_DATABASE_URL": wrig.database_url,
        "LLMQ_BROKER_URL": wrig.redis_url,
        "LLMQ_CONFIG": str(wrig.config_path),
    }
    app = create_app(env, load_test_config(wrig.config_path), settings or ServeSettings())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("llmq serve did not start")
        time.sleep(0.02)
    return Served(f"http://127.0.0.1:{port}/v1", wrig, server, thread)


@pytest.fixture()
def make_serve(rig: WorkerRig) -> Iterator[Callable[..., Served]]:  # noqa: F811 - the fixture
    """make_serve(settings=None, models=MODELS) configures the rig and starts the app."""
    started: list[Served] = []

    def make(settings: ServeSettings | None = None, models: Any = None) -> Served:
        if rig.config_path is None:
            rig.configure(models or MODELS)
        served = start_serve(rig, settings)
        started.append(served)
        return served

    yield make
    for s in started:
        s.stop()


@pytest.fixture()
def served(make_serve: Callable[..., Served]) -> Served:
    return make_serve()


def batch_lines(n: int, model_name: str = "m", prefix: str = "req") -> list[dict[str, Any]]:
    """n OpenAI Batch input lines."""
    return [
        {
            "custom_id": f"{prefix}-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model_name,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": f"Summarise item {i}."},
                ],
                "max_tokens": 50,
            },
        }
        for i in range(n)
    ]


def write_lines(path: Path, lines: list[Any]) -> Path:
    import json

    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def wait_status(
    client: openai.OpenAI, batch_id: str, statuses: set[str], timeout_s: float = 90.0,
    on_timeout: Callable[[], str] | None = None,
) -> Any:  # fmt: skip
    """Poll like an OpenAI user until the batch reaches one of `statuses`."""
    deadline = time.monotonic() + timeout_s
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        if time.monotonic() > deadline:
            logs = on_timeout() if on_timeout else ""
            raise AssertionError(f"batch stuck in {batch.status}: {batch}\n{logs}")
        time.sleep(0.2)
