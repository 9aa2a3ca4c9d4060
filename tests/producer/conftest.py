"""Fixtures for the producer tests: a small config, a Client on the test ledger and broker,
a JSONL writer, and `llmq` run in a subprocess against the test ledger and broker.

No __init__.py here on purpose: a `tests/producer` package would shadow the real `producer`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from producer_testlib import MODELS

from producer.client import Client
from schemas.config import LLMConfig


@pytest.fixture()
def cfg() -> LLMConfig:
    return LLMConfig.model_validate({"models": MODELS})


@pytest.fixture()
def client(clean_db: str, redis_url: str, cfg: LLMConfig) -> Iterator[Client]:
    with Client(clean_db, redis_url, cfg) as c:
        yield c


@pytest.fixture()
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """write_jsonl(lines, name=...) -> path; dicts are dumped, str/bytes written as they are."""

    def write(lines: Sequence[Any], name: str = "batch.jsonl") -> Path:
        path = tmp_path / name
        with open(path, "wb") as f:
            for line in lines:
                if isinstance(line, dict):
                    line = json.dumps(line)
                f.write((line.encode() if isinstance(line, str) else line) + b"\n")
        return path

    return write


@pytest.fixture()
def cli_env(clean_db: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for `llmq` in a subprocess: test ledger, broker and a config file."""
    config = tmp_path / "llm_config.yaml"
    config.write_text(yaml.safe_dump({"models": MODELS}))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        LLMQ_DATABASE_URL=clean_db,
        LLMQ_BROKER_URL=redis_url,
        LLMQ_CONFIG=str(config),
        LLMQ_DOTENV=str(tmp_path / "no.env"),
    )
    return env


@pytest.fixture()
def llmq(
    cli_env: dict[str, str], tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmq.cli", *args],
            env=cli_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run
