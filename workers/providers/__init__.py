"""Provider adapters: one module per wire format, one `REGISTRY` line per provider.

Owns: `REGISTRY`, `build_adapter` (deployment + config -> a ready adapter sharing the given
client), `has_credentials`, and the documented entry points `LLMProviderManager` and
`LLMProviderError`. Must not: branch on provider names anywhere else in llmq; adding a provider
is a new module, a line here, an `llm_config.yaml` entry and a test module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from core.errors import LLMProviderError
from schemas.config import LLMConfig, LLMModelConfig, LLMProvider
from workers.providers.anthropic import AnthropicAdapter
from workers.providers.base import (
    AdapterTarget,
    ProviderAdapter,
    ProviderReply,
    ProviderRequest,
    RateLimitInfo,
)
from workers.providers.cohere import CohereAdapter
from workers.providers.google import GoogleAdapter
from workers.providers.huggingface import HuggingFaceAdapter
from workers.providers.local import LocalAdapter
from workers.providers.openai import OpenAIAdapter

if TYPE_CHECKING:
    from workers.providers.manager import LLMProviderManager

REGISTRY: dict[LLMProvider, type[ProviderAdapter]] = {
    LLMProvider.OPENAI: OpenAIAdapter,
    LLMProvider.ANTHROPIC: AnthropicAdapter,
    LLMProvider.GOOGLE: GoogleAdapter,
    LLMProvider.COHERE: CohereAdapter,
    LLMProvider.HUGGINGFACE: HuggingFaceAdapter,
    LLMProvider.LOCAL: LocalAdapter,
}


def target_for(deployment: LLMModelConfig, config: LLMConfig) -> AdapterTarget:
    """The deployment's provider settings and key (a per-model key wins over the provider's)."""
    settings = config.provider_settings(deployment.provider)
    return AdapterTarget(deployment, settings, deployment.api_key or settings.api_key)


def build_adapter(
    deployment: LLMModelConfig, config: LLMConfig, client: httpx.Client
) -> ProviderAdapter:
    """A ready adapter for one deployment. Build once and reuse: it precomputes URL/headers."""
    return REGISTRY[deployment.provider].for_target(target_for(deployment, config), client)


def has_credentials(deployment: LLMModelConfig, config: LLMConfig) -> bool:
    """True if the deployment can authenticate (local servers need no key)."""
    if not REGISTRY[deployment.provider].requires_key:
        return True
    key = target_for(deployment, config).api_key
    return bool(key and key.get_secret_value())


def __getattr__(name: str) -> Any:
    # The manager imports config loading and pricing; load it only when asked for.
    if name == "LLMProviderManager":
        from workers.providers.manager import LLMProviderManager

        return LLMProviderManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "REGISTRY",
    "AdapterTarget",
    "LLMProviderError",
    "LLMProviderManager",
    "ProviderAdapter",
    "ProviderReply",
    "ProviderRequest",
    "RateLimitInfo",
    "build_adapter",
    "has_credentials",
    "target_for",
]
