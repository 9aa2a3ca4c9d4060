"""Helpers for provider tests: point a one-model config (and an adapter) at the simulator."""

from __future__ import annotations

from typing import Any

import httpx

from schemas.config import LLMConfig, LLMModelConfig, LLMProvider
from schemas.job import ChatMessage
from workers.providers import build_adapter
from workers.providers.base import ProviderAdapter, ProviderRequest

# Adapter flavours under test: simulator name -> (our provider, local dialect).
FLAVOURS: dict[str, tuple[LLMProvider, str]] = {
    "openai": (LLMProvider.OPENAI, "openai"),
    "anthropic": (LLMProvider.ANTHROPIC, "openai"),
    "google": (LLMProvider.GOOGLE, "openai"),
    "cohere": (LLMProvider.COHERE, "openai"),
    "huggingface": (LLMProvider.HUGGINGFACE, "openai"),
    "local": (LLMProvider.LOCAL, "openai"),
    "ollama": (LLMProvider.LOCAL, "ollama"),
}
TEST_KEY = "sk-test-5f1c2a9e7b"


def sim_config(
    sim: Any,
    flavour: str,
    model: str = "test-model",
    key: str | None = TEST_KEY,
    **provider_settings: Any,
) -> LLMConfig:
    """A one-model config whose provider points at the simulator."""
    provider, dialect = FLAVOURS[flavour]
    settings: dict[str, Any] = {"api_base": sim.api_base(flavour), **provider_settings}
    if dialect != "openai":
        settings["dialect"] = dialect
    if key is not None:
        settings["api_key"] = key
    return LLMConfig(
        default_provider=provider,
        providers={provider: settings},
        models=[LLMModelConfig(name=model, provider=provider, max_tokens=64)],
    )


def adapter_for(sim: Any, flavour: str, client: httpx.Client, **kw: Any) -> ProviderAdapter:
    config = sim_config(sim, flavour, **kw)
    return build_adapter(config.models[0], config, client)


def request(
    model: str = "test-model", text: str = "Hello, how are you?", **kw: Any
) -> ProviderRequest:
    fields: dict[str, Any] = {
        "model_id": model,
        "messages": (ChatMessage(role="user", content=text),),
        "max_tokens": 64,
    }
    fields.update(kw)
    return ProviderRequest(**fields)
