"""`llmq run` checks capabilities like `llmq submit` (issue 15, Deliver 3): the embedded
producer gets the registry's resolver for the run's own config."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.embedded.clean_env import llmq

MODELS = [
    {"name": "chat", "provider": "cohere", "model_id": "command-r-08-2024", "is_default": True},
    {"name": "other", "provider": "openai", "model_id": "gpt-4o-mini"},
]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def test_run_rejects_a_line_no_deployment_can_serve(tmp_path: Path) -> None:
    (tmp_path / "llm_config.yaml").write_text(yaml.safe_dump({"models": MODELS}))
    lines = [
        {"custom_id": "fine", "prompt": "hi", "tools": [TOOL]},
        {"custom_id": "both", "prompt": "JSON", "response_format": {"type": "json_object"}, "tools": [TOOL]},
        {"custom_id": "ok", "model": "other", "prompt": "JSON", "response_format": {"type": "json_object"}, "tools": [TOOL]},
    ]  # fmt: skip
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    proc = llmq(["run", "in.jsonl"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "line 2: no deployment of chat supports json_with_tools" in proc.stderr
    assert "line 1" not in proc.stderr and "line 3" not in proc.stderr
    assert not (tmp_path / "in.jsonl.results.jsonl").exists()
