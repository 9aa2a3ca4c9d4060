"""The embedded mode's pure parts: when the simulator stands in, how the config is pointed at
it, and that the demo's config, simulator behaviour and input fit together."""

from __future__ import annotations

import json

from core.jsonl import parse_lines
from llmq.commands.demo import _load_demo_config
from llmq.demo_data import demo_lines
from llmq.embedded import SIM_KEY, needs_simulator, point_at_simulator
from schemas.config import LLMConfig, LLMProvider
from workers.providers.config import load_config

SIM_URL = "http://127.0.0.1:12345"


def test_the_simulator_stands_in_only_when_no_provider_key_is_configured() -> None:
    assert needs_simulator(load_config(env={}))
    assert not needs_simulator(load_config(env={"OPENAI_API_KEY": "sk-real"}))
    # A keyless local server alone does not count (the default lists one that rarely runs).
    local_only = LLMConfig.model_validate({"models": [{"name": "m", "provider": "local"}]})
    assert needs_simulator(local_only)


def test_pointing_at_the_simulator_replaces_every_endpoint_and_key() -> None:
    config = load_config(env={"OPENAI_API_KEY": "sk-real-secret", "ANTHROPIC_API_KEY": "a-real"})
    config = config.model_copy(
        update={
            "models": [
                *config.models,
                config.models[0].model_copy(update={"id": "x", "api_url": "https://e.example"}),
            ]
        }
    )
    pointed = point_at_simulator(config, SIM_URL)
    for provider in LLMProvider:
        settings = pointed.provider_settings(provider)
        assert settings.api_base is not None and settings.api_base.startswith(SIM_URL)
        assert settings.api_key is not None and settings.api_key.get_secret_value() == SIM_KEY
    assert all(m.api_url is None and m.api_key is None for m in pointed.models)
    assert "sk-real-secret" not in json.dumps(pointed.model_dump(mode="json"))


def test_pointing_keeps_the_local_wire_dialect() -> None:
    config = LLMConfig.model_validate(
        {
            "providers": {"local": {"dialect": "ollama"}},
            "models": [{"name": "m", "provider": "local"}],
        }
    )
    pointed = point_at_simulator(config, SIM_URL)
    assert pointed.provider_settings(LLMProvider.LOCAL).api_base == f"{SIM_URL}/ollama"


def test_the_demo_shows_cost_routing_retries_and_fallback() -> None:
    config, sim = _load_demo_config()
    default = config.default_model_name()
    assert default is not None
    deployments = config.deployments_for(default)
    assert len({m.provider for m in deployments}) >= 3
    prices = sorted((m.input_cost_per_mtok, m.provider.value) for m in deployments)
    cheapest = prices[0][1]
    assert len({p for p, _ in prices}) == len(prices), "distinct prices, so cost decides"
    assert sim.behaviour(cheapest).down, "the cheapest is down: the router must move on"
    assert config.fallbacks.get(default), "the default model has a fallback model"
    injected = [sim.behaviour(p.value) for p in LLMProvider]
    assert any(b.rate_429 > 0 for b in injected) and any(b.rate_500 > 0 for b in injected)


def test_the_demo_input_is_valid_for_the_demo_config() -> None:
    config, _ = _load_demo_config()
    lines = demo_lines()
    specs = parse_lines(((n, json.dumps(line)) for n, line in enumerate(lines, 1)), config)
    assert 60 <= len(specs) <= 120
    assert len({s.model for s in specs}) >= 2
