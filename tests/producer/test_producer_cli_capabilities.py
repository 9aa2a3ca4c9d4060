"""`llmq submit` checks capabilities (issue 15, Deliver 3): the CLI hands the producer the
provider registry's resolver, so a line no deployment of its model (or its fallbacks) can
serve is ``line N: no deployment of MODEL supports FEATURE`` and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from producer_testlib import queued_job_ids, queued_messages, table_counts
from sqlalchemy import Engine

MODELS = [
    {"name": "m-default", "provider": "openai", "is_default": True},
    {"name": "m-other", "provider": "anthropic", "model_id": "claude-haiku-4-5"},
    {"name": "m-cohere", "provider": "cohere", "model_id": "command-r-08-2024"},
    {"name": "m-vision", "provider": "cohere", "model_id": "command-r7b-12-2024"},
    {"name": "m-local", "provider": "local", "model_id": "llama"},
]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
IMAGE = {"type": "image_url", "image_url": {"url": "https://img.example.com/a.png"}}


def use_config(cli_env: dict[str, str], **extra: Any) -> None:
    Path(cli_env["LLMQ_CONFIG"]).write_text(yaml.safe_dump({"models": MODELS, **extra}))


def test_submit_rejects_lines_no_deployment_can_serve(
    llmq: Callable[..., Any],
    write_jsonl: Callable[..., Path],
    cli_env: dict[str, str],
    engine: Engine,
    redis_url: str,
) -> None:
    use_config(cli_env, providers={"local": {"dialect": "ollama"}})
    lines = [
        {"custom_id": "ok", "prompt": "hi", "seed": 1},  # openai honours seed
        {"custom_id": "seed", "model": "m-other", "prompt": "hi", "seed": 1},
        {"custom_id": "both", "model": "m-cohere", "prompt": "JSON please",
         "response_format": {"type": "json_object"}, "tools": [TOOL]},
        {"custom_id": "img", "model": "m-vision",
         "messages": [{"role": "user", "content": [{"type": "text", "text": "?"}, IMAGE]}]},
        {"custom_id": "forced", "model": "m-local", "prompt": "hi", "tools": [TOOL],
         "tool_choice": "required"},  # Ollama cannot force a tool call
    ]  # fmt: skip
    done = llmq("submit", str(write_jsonl(lines)))
    assert done.returncode == 2, done.stderr
    assert "line 1" not in done.stderr
    assert "line 2: no deployment of m-other supports seed" in done.stderr
    assert "line 3: no deployment of m-cohere supports json_with_tools" in done.stderr
    assert "line 4: no deployment of m-vision supports vision" in done.stderr
    assert "line 5: no deployment of m-local supports tool_choice_required" in done.stderr
    assert table_counts(engine) == {"batches": 0, "jobs": 0, "attempts": 0}
    assert queued_messages(redis_url) == []


def test_a_fallback_that_can_serve_lets_the_line_through(
    llmq: Callable[..., Any],
    write_jsonl: Callable[..., Path],
    cli_env: dict[str, str],
    redis_url: str,
) -> None:
    use_config(cli_env, fallbacks={"m-vision": ["m-default"]})
    line = {"custom_id": "img", "model": "m-vision",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "?"}, IMAGE]}]}  # fmt: skip
    done = llmq("submit", str(write_jsonl([line])), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["batch_id"]
    assert len(queued_job_ids(redis_url)) == 1


def test_the_config_override_is_honoured(
    llmq: Callable[..., Any], write_jsonl: Callable[..., Path], cli_env: dict[str, str]
) -> None:
    """`capabilities:` in llm_config.yaml changes the verdict: the resolver gets the config."""
    models = [{**MODELS[0], "capabilities": {"seed": False}}]
    Path(cli_env["LLMQ_CONFIG"]).write_text(yaml.safe_dump({"models": models}))
    done = llmq("submit", str(write_jsonl([{"custom_id": "a", "prompt": "hi", "seed": 3}])))
    assert done.returncode == 2
    assert "line 1: no deployment of m-default supports seed" in done.stderr
