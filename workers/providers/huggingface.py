"""Hugging Face Inference Providers router (`POST https://router.huggingface.co/v1/chat/completions`).

Owns: what differs from OpenAI: the router base, `max_tokens`, TGI-style errors
(`{"error": "...", "error_type": ...}`, `X-Error-Message`; 402 = credits exhausted) and the
legacy `https://api-inference.huggingface.co` base from older configs, which no longer serves
chat and is mapped to the router with a warning. A model id may force a provider with a
suffix (`meta-llama/Llama-3.1-8B-Instruct:novita`); it is sent unchanged.
Reference: https://huggingface.co/docs/inference-providers. Must not: do I/O.
"""

from __future__ import annotations

import logging
from typing import ClassVar
from urllib.parse import urlsplit

from schemas.config import LLMProvider
from workers.providers.openai import OpenAIAdapter

log = logging.getLogger(__name__)

ROUTER_BASE = "https://router.huggingface.co/v1"
LEGACY_HOSTS = frozenset({"api-inference.huggingface.co"})


def upgrade_legacy_base(url: str) -> str:
    """The router base for a legacy serverless-inference URL; any other URL unchanged."""
    if urlsplit(url).hostname in LEGACY_HOSTS:
        return ROUTER_BASE
    return url


class HuggingFaceAdapter(OpenAIAdapter):
    name: ClassVar[LLMProvider] = LLMProvider.HUGGINGFACE
    env_key: ClassVar[str | None] = "HUGGINGFACE_API_KEY"
    default_base_url: ClassVar[str] = ROUTER_BASE
    max_tokens_field: ClassVar[str] = "max_tokens"

    def resolve_base_url(self) -> str:
        base = super().resolve_base_url()
        upgraded = upgrade_legacy_base(base)
        if upgraded != base:
            log.warning(
                "huggingface api_base %s is the retired serverless Inference API; using %s "
                "instead. Set `providers.huggingface.api_base: %s` in llm_config.yaml.",
                base,
                upgraded,
                upgraded,
            )
        return upgraded
