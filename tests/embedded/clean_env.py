"""Running `llmq` the way a newcomer does: in a fresh folder, no LLMQ_* variables, no keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from workers.providers.config import key_env_names

LLMQ = str(Path(sys.executable).with_name("llmq"))
KEY_VARS = key_env_names()


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ minus every LLMQ_* variable and every provider key (a key would make
    `llmq run` call a real provider), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMQ_") and k not in KEY_VARS}
    return {**env, **extra}


def llmq(args: list[str], cwd: Path, timeout_s: float = 240, **extra_env: str) -> Any:
    """Run the installed `llmq` with `args` in `cwd`; returns the CompletedProcess."""
    return subprocess.run(
        [LLMQ, *args],
        cwd=cwd,
        env=clean_env(**extra_env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def write_jsonl(path: Path, n: int) -> list[str]:
    """`n` native lines with distinct custom ids; returns the ids in order."""
    ids = [f"row-{i:05d}" for i in range(n)]
    with open(path, "w", encoding="utf-8") as f:
        for i, custom_id in enumerate(ids):
            line = {"custom_id": custom_id, "prompt": f"Summarise item {i} in one line."}
            f.write(json.dumps(line) + "\n")
    return ids


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
