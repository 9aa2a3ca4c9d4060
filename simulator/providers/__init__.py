"""The simulated providers' wire formats, one ``Dialect`` per provider key.

Owns the registry ``DIALECTS`` (provider key -> dialect instance), ``ROUTES`` (provider key ->
path served) and ``ALIAS_ROUTES`` (extra paths served by the same dialect). Provider keys are those of ``simulator.config.PROVIDERS``.
"""

from __future__ import annotations

from simulator.providers.anthropic import AnthropicDialect
from simulator.providers.base import Dialect, RateSnapshot, Rendered, SimError
from simulator.providers.cohere import CohereDialect
from simulator.providers.google import GoogleDialect
from simulator.providers.ollama import OllamaDialect
from simulator.providers.openai import HuggingFaceDialect, LocalDialect, OpenAIDialect

DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        OpenAIDialect(),
        AnthropicDialect(),
        GoogleDialect(),
        CohereDialect(),
        HuggingFaceDialect(),
        LocalDialect(),
        OllamaDialect(),
    )
}

ROUTES: dict[str, str] = {
    "openai": "/openai/v1/chat/completions",
    "anthropic": "/anthropic/v1/messages",
    "google": "/google/v1beta/models/{model}:generateContent",
    "cohere": "/cohere/v2/chat",
    "huggingface": "/huggingface/v1/chat/completions",
    "local": "/local/v1/chat/completions",
    "ollama": "/ollama/api/chat",
}

# Also served: google-genai 3.x defaults to api_version "v1" for AI Studio keys.
ALIAS_ROUTES: dict[str, tuple[str, ...]] = {
    "google": ("/google/v1/models/{model}:generateContent",),
}

__all__ = ["ALIAS_ROUTES", "DIALECTS", "ROUTES", "Dialect", "RateSnapshot", "Rendered", "SimError"]
