"""The simulated providers' wire formats, and which endpoint serves which provider.

Owns ``DIALECTS`` (dialect name -> ``Dialect`` class: the wire formats the simulator speaks) and
the endpoint tables derived from ``workers.providers.REGISTRY``: each registered provider is
served at ``/{provider}`` by the dialect its adapter names (``simulator_dialect``), and each
adapter variant (e.g. local's Ollama dialect) at ``/{dialect}``. The tables are computed when
asked for, so a provider registered at run time (a test's) is served by the next app built.
Adding a provider is an adapter, a registry line and, unless an existing dialect fits, a
dialect here. Must not: list providers anywhere else in the simulator.
"""

from __future__ import annotations

from schemas.config import ProviderSettings
from simulator.providers.anthropic import AnthropicDialect
from simulator.providers.base import Dialect, RateSnapshot, Rendered, SimError
from simulator.providers.cohere import CohereDialect
from simulator.providers.google import GoogleDialect
from simulator.providers.ollama import OllamaDialect
from simulator.providers.openai import HuggingFaceDialect, LocalDialect, OpenAIDialect
from workers.providers import REGISTRY

DIALECTS: dict[str, type[Dialect]] = {
    d.name: d
    for d in (
        OpenAIDialect,
        AnthropicDialect,
        GoogleDialect,
        CohereDialect,
        HuggingFaceDialect,
        LocalDialect,
        OllamaDialect,
    )
}


def endpoints() -> dict[str, Dialect]:
    """Endpoint name -> the dialect instance serving it, for every registered provider."""
    served: dict[str, Dialect] = {}
    for provider, adapter in REGISTRY.items():
        served[str(provider)] = DIALECTS[adapter.simulator_dialect](str(provider))
        for variant in adapter.variants:
            served.setdefault(variant.simulator_dialect, DIALECTS[variant.simulator_dialect]())
    return served


def routes(name: str, dialect: Dialect) -> tuple[str, ...]:
    """The chat routes of one endpoint (its main route first)."""
    return tuple(f"/{name}{path}" for path in (dialect.chat_path, *dialect.alias_paths))


def api_bases() -> dict[str, str]:
    """Endpoint name -> the api_base path to give a client (append it to the server URL)."""
    return {name: f"/{name}{dialect.base_path}" for name, dialect in endpoints().items()}


def endpoint_for(provider: str, settings: ProviderSettings) -> str:
    """The endpoint that serves `provider` configured with `settings` (its adapter may pick a
    variant from them, e.g. `providers.local.dialect: ollama`)."""
    adapter = REGISTRY[provider]
    variant = adapter.variant(settings)
    return str(provider) if variant is adapter else variant.simulator_dialect


__all__ = [
    "DIALECTS",
    "Dialect",
    "RateSnapshot",
    "Rendered",
    "SimError",
    "api_bases",
    "endpoint_for",
    "endpoints",
    "routes",
]
