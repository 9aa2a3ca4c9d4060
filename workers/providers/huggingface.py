"""Hugging Face Inference Providers router (`POST https://router.huggingface.co/v1/chat/completions`).

Owns: what differs from OpenAI: the router base, `max_tokens`, TGI-style errors
(`{"error": "...", "error_type": ...}`, `X-Error-Message`; 402 = credits exhausted) and the
legacy `https://api-inference.huggingface.co` base from older configs, which no longer serves
chat (a `retired_bases` entry: config loading and the base class map it to the router, with a
warning). A model id may force a provider with a
suffix (`meta-llama/Llama-3.1-8B-Instruct:novita`); it is sent unchanged.
Reference: https://huggingface.co/docs/inference-providers. Must not: do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from schemas.config import LLMProvider
from workers.providers.embed_wire import FeatureExtractionEmbeds
from workers.providers.openai import OpenAIAdapter

ROUTER_BASE = "https://router.huggingface.co/v1"
# genai-prices prices a model id that forces a provider (`org/model:novita`) as
# `huggingface_novita`; the auto router has no single price.
ROUTED_PRICES_PREFIX = "huggingface_"


class HuggingFaceAdapter(FeatureExtractionEmbeds, OpenAIAdapter):
    name: ClassVar[str] = LLMProvider.HUGGINGFACE
    env_keys: ClassVar[tuple[str, ...]] = ("HUGGINGFACE_API_KEY", "HF_TOKEN")
    default_base_url: ClassVar[str] = ROUTER_BASE
    retired_bases: ClassVar[Mapping[str, str]] = {"api-inference.huggingface.co": ROUTER_BASE}
    simulator_dialect: ClassVar[str] = "huggingface"
    usage_report: ClassVar[object] = None  # no usage API: reconcile from a CSV export
    admin_env_keys: ClassVar[tuple[str, ...]] = ()
    batch_api: ClassVar[str | None] = None  # the router has no batch endpoint
    max_tokens_field: ClassVar[str] = "max_tokens"
    json_object_needs_word: ClassVar[bool] = False  # OpenAI's own rule; providers differ

    @classmethod
    def genai_ref(cls, model_id: str) -> tuple[str, str] | None:
        if ":" not in model_id:
            return None
        model, _, routed = model_id.rpartition(":")
        return ROUTED_PRICES_PREFIX + routed, model
