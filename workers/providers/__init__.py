"""Provider adapters: one module per wire format, one `REGISTRY` line per provider.

Owns: `REGISTRY`, the only list of providers (name -> adapter class; the class carries every
fact about its provider: key env names, default and retired bases, genai-prices id, simulator
dialect), `build_adapter` (deployment + config -> a ready adapter sharing the given client),
`has_credentials`, `capabilities_of` (what a deployment can honour), and the documented entry
points `LLMProviderManager` and `LLMProviderError`.
Must not: branch on provider names anywhere else in llmq. Adding a provider is a new adapter
module, a line here and a simulator dialect (`simulator/providers/`), plus its tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from core.errors import LLMProviderError
from schemas.config import LLMConfig, LLMModelConfig, ProviderSettings
from schemas.request import Feature
from workers.providers.anthropic import AnthropicAdapter
from workers.providers.base import (
    AdapterTarget,
    ProviderAdapter,
    ProviderReply,
    ProviderRequest,
    RateLimitInfo,
)
from workers.providers.cohere import CohereAdapter
from workers.providers.features import with_overrides
from workers.providers.google import GoogleAdapter
from workers.providers.huggingface import HuggingFaceAdapter
from workers.providers.keys import KeyPool, is_revoked, revoke_alert
from workers.providers.local import LocalAdapter
from workers.providers.openai import OpenAIAdapter

if TYPE_CHECKING:
    from workers.providers.manager import LLMProviderManager

REGISTRY: dict[str, type[ProviderAdapter]] = {
    OpenAIAdapter.name: OpenAIAdapter,
    AnthropicAdapter.name: AnthropicAdapter,
    GoogleAdapter.name: GoogleAdapter,
    CohereAdapter.name: CohereAdapter,
    HuggingFaceAdapter.name: HuggingFaceAdapter,
    LocalAdapter.name: LocalAdapter,
}


def target_for(deployment: LLMModelConfig, config: LLMConfig) -> AdapterTarget:
    """The deployment's provider settings and key (per-model keys win over the provider's);
    a key pool when the keys rotate (several keys, or a key file re-read on change)."""
    settings = config.provider_settings(deployment.provider)
    keys, key_file = deployment_keys(deployment, settings)
    # the first listed key: a model's lone `api_keys: [k]` is its key, not the provider's
    first = SecretStr(keys[0]) if keys else None
    pool = None
    if len(keys) > 1 or key_file:
        pool = KeyPool(keys, key_file, deployment.deployment_id, revoke_alert(config))
    return AdapterTarget(deployment, settings, first, keys=pool)


def deployment_keys(
    deployment: LLMModelConfig, settings: ProviderSettings
) -> tuple[list[str], str | None]:
    """(literal keys, key file) a deployment uses: its own when it has any, else its
    provider's."""
    if deployment.api_key is not None or deployment.api_keys:
        own = [deployment.api_key, *deployment.api_keys]
        return [k.get_secret_value() for k in own if k is not None], None
    listed = [settings.api_key, *settings.api_keys]
    return [k.get_secret_value() for k in listed if k is not None], settings.api_key_file


def build_adapter(
    deployment: LLMModelConfig, config: LLMConfig, client: httpx.Client
) -> ProviderAdapter:
    """A ready adapter for one deployment. Build once and reuse: it precomputes URL/headers."""
    return REGISTRY[deployment.provider].for_target(target_for(deployment, config), client)


def env_names(provider: str) -> tuple[str, ...]:
    """Where the provider's key may be set (environment or .env), first found wins."""
    adapter = REGISTRY.get(provider)
    return adapter.env_keys if adapter is not None else ()


def has_credentials(deployment: LLMModelConfig, config: LLMConfig) -> bool:
    """True if the deployment can authenticate (local servers need no key); keys revoked in
    this process (401/403) do not count."""
    if not REGISTRY[deployment.provider].requires_key:
        return True
    keys, key_file = deployment_keys(deployment, config.provider_settings(deployment.provider))
    return bool(key_file) or any(k and not is_revoked(k) for k in keys)


def capabilities_of(
    deployment: LLMModelConfig, config: LLMConfig | None = None
) -> frozenset[Feature]:
    """The features this deployment can honour: its adapter's built-in capabilities for the
    model, changed by the deployment's `capabilities:` in llm_config.yaml. Pure.

    A provider may speak several dialects (local: OpenAI-compatible or Ollama), chosen by its
    provider settings: with `config` the chosen dialect's capabilities are used; without it,
    only what every dialect can honour (never promise what the adapter would then refuse).
    """
    adapter = REGISTRY[deployment.provider]
    if config is not None:
        classes: tuple[type[ProviderAdapter], ...] = (
            adapter.variant(config.provider_settings(deployment.provider)),
        )
    else:
        classes = (adapter, *adapter.variants)
    built_in = frozenset.intersection(*(c.capabilities_for(deployment) for c in classes))
    return with_overrides(built_in, deployment.capabilities)


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
    "capabilities_of",
    "env_names",
    "has_credentials",
    "target_for",
]
