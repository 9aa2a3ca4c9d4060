"""Write an `llm_config.yaml` whose providers all point at a running simulator.

Keys are written into the file per provider (the simulator accepts any key not starting with
`bad`), so a test never depends on, or leaks, the developer's real OPENAI_API_KEY & co.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from schemas.config import LLMConfig
from simulator.server import API_BASES
from workers.providers.config import load_config

SIM_PROVIDERS = ("openai", "anthropic", "google", "cohere", "huggingface", "local")

# Retries and cooldowns sized for tests: short waits, and no circuit opening on a few failures.
FAST_ROUTING: dict[str, Any] = {
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.5,
    "default_cooldown_s": 0.2,
    "circuit_open_s": 1.0,
}


def sim_providers(sim_url: str, keys: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A `providers:` block pointing every provider at the simulator, each with a test key."""
    keys = keys or {}
    return {
        p: {"api_base": sim_url + API_BASES[p], "api_key": keys.get(p, f"test-key-{p}")}
        for p in SIM_PROVIDERS
    }


def config_dict(
    sim_url: str,
    models: Sequence[Mapping[str, Any]],
    *,
    fallbacks: Mapping[str, Sequence[str]] | None = None,
    routing: Mapping[str, Any] | None = None,
    keys: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The config as a plain dict (routing defaults to FAST_ROUTING plus `routing`)."""
    data: dict[str, Any] = {
        "providers": sim_providers(sim_url, keys),
        "models": [dict(m) for m in models],
        "routing": {**FAST_ROUTING, **(routing or {})},
    }
    if fallbacks:
        data["fallbacks"] = {k: list(v) for k, v in fallbacks.items()}
    # Batch lanes (issue 18) need beat's flusher and poller, which most tests do not run:
    # off unless a test asks for them (tests/lanes/ does).
    data["batch_lane"] = {"enabled": False}
    data.update(extra)
    return data


def write_llm_config(
    path: Path, sim_url: str, models: Sequence[Mapping[str, Any]], **kw: Any
) -> Path:
    """Write the config (see `config_dict`) to `path` and return it."""
    path.write_text(yaml.safe_dump(config_dict(sim_url, models, **kw), sort_keys=False))
    return path


def load_test_config(path: Path) -> LLMConfig:
    """Load the written file the way a worker does, with an environment free of real keys."""
    return load_config(str(path), env={"LLMQ_DOTENV": str(path.parent / "no.env")})


def model(name: str, provider: str, **fields: Any) -> dict[str, Any]:
    """One `models:` entry (e.g. `model("m", "openai", input_cost_per_mtok=1)`)."""
    return {"name": name, "provider": provider, **fields}
