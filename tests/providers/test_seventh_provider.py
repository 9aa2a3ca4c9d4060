"""Adding a provider is an adapter, a registry line and a simulator dialect: a seventh provider,
defined here and registered for this test only, is configured, keyed, priced, served by the
simulator and called end to end through `LLMProviderManager.call_model` over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from core.errors import ConfigError
from simulator.providers import api_bases
from simulator.server import start_in_thread
from workers.providers import REGISTRY, LLMProviderManager
from workers.providers.config import load_config
from workers.providers.openai import OpenAIAdapter


class AcmeAdapter(OpenAIAdapter):
    """A made-up OpenAI-compatible provider: only facts, the wire format is inherited."""

    name: ClassVar[str] = "acme"
    env_keys: ClassVar[tuple[str, ...]] = ("ACME_API_KEY", "ACME_TOKEN")
    default_base_url: ClassVar[str] = "https://api.acme.example/v1"
    genai_prices_id: ClassVar[str | None] = None
    simulator_dialect: ClassVar[str] = "openai"  # an existing dialect, reused
    max_tokens_field: ClassVar[str] = "max_tokens"


@pytest.fixture()
def acme(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(REGISTRY, AcmeAdapter.name, AcmeAdapter)
    yield


def write_config(path: Path, api_base: str) -> str:
    data = {
        "default_provider": "acme",
        "providers": {"acme": {"api_base": api_base}},
        "models": [
            {
                "name": "acme-chat",
                "provider": "acme",
                "model_id": "acme-1",
                "input_cost_per_mtok": 1,
                "output_cost_per_mtok": 2,
            }
        ],
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_a_registered_seventh_provider_is_called_end_to_end(acme: None, tmp_path: Path) -> None:
    with start_in_thread() as sim:
        path = write_config(tmp_path / "llm_config.yaml", sim.url + api_bases()["acme"])
        env = {"ACME_TOKEN": "sk-acme-alias", "LLMQ_DOTENV": str(tmp_path / "no.env")}
        config = load_config(path, env=env)
        settings = config.provider_settings("acme")
        assert settings.api_key is not None
        assert settings.api_key.get_secret_value() == "sk-acme-alias"  # an alias, from env

        with LLMProviderManager(config, env={}) as manager:
            result = manager.call_model("Say hello.", max_tokens=16)

        stats = sim.stats()
    assert (result["provider"], result["model"], result["model_id"]) == (
        "acme",
        "acme-chat",
        "acme-1",
    )
    assert result["deployment"] == "acme/acme-1"
    assert result["response"] and result["usage"]["prompt_tokens"] > 0
    assert isinstance(result["cost_usd"], Decimal) and result["cost_usd"] > 0
    assert stats["providers"]["acme"]["requests"] == 1  # its own endpoint, its own counters


def test_an_unregistered_provider_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path / "llm_config.yaml", "https://api.acme.example/v1")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"LLMQ_DOTENV": str(tmp_path / "no.env")})
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "acme" in message and "'openai'" in message
