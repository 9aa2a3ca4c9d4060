"""`can_serve` / `missing` as a table: (deployment, llm_config overrides, required) -> verdict.
The one capability rule both the queue's routing and the direct call ask."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.config import LLMConfig
from schemas.job import ChatMessage
from schemas.request import Feature, Features, required_features
from workers.routing.capability import can_serve, incapable_ids, missing

F = Feature
MODELS: list[dict[str, Any]] = [
    {"name": "m", "provider": "openai", "model_id": "gpt-4o-mini"},
    {"name": "m", "provider": "cohere", "model_id": "command-r-08-2024"},
    {"name": "m", "provider": "cohere", "model_id": "command-a-vision-07-2025"},
    {"name": "m", "provider": "google", "model_id": "gemini-2.5-flash"},
    {"name": "m", "provider": "anthropic", "model_id": "claude-haiku-4-5"},
    {"name": "o", "provider": "openai", "model_id": "gpt-4o", "capabilities": {"vision": False, "seed": False}},
    {"name": "l", "provider": "local", "model_id": "llama"},
]  # fmt: skip
CONFIG = LLMConfig.model_validate({"models": MODELS})
DEPS = {m.deployment_id: m for m in CONFIG.models}

# (deployment id, required features, what it lacks, in Feature order)
TABLE: list[tuple[str, frozenset[Feature], list[Feature]]] = [
    ("openai/gpt-4o-mini", frozenset(), []),
    ("openai/gpt-4o-mini", frozenset(F), []),  # OpenAI honours everything
    ("cohere/command-r-08-2024", frozenset({F.JSON_SCHEMA, F.TOOLS}), []),
    ("cohere/command-r-08-2024", frozenset({F.JSON_SCHEMA, F.TOOLS, F.JSON_WITH_TOOLS}), [F.JSON_WITH_TOOLS]),
    ("cohere/command-r-08-2024", frozenset({F.VISION, F.IMAGE_URL}), [F.VISION, F.IMAGE_URL]),
    ("cohere/command-a-vision-07-2025", frozenset({F.VISION, F.IMAGE_URL}), []),  # a vision model
    ("google/gemini-2.5-flash", frozenset({F.VISION}), []),
    ("google/gemini-2.5-flash", frozenset({F.VISION, F.IMAGE_URL}), [F.IMAGE_URL]),  # inline only
    ("anthropic/claude-haiku-4-5", frozenset({F.STOP, F.SEED, F.PENALTIES}), [F.SEED, F.PENALTIES]),
    ("openai/gpt-4o", frozenset({F.VISION, F.SEED, F.STOP}), [F.VISION, F.SEED]),  # config removes
    ("local/llama", frozenset({F.TOOLS, F.TOOL_CHOICE_REQUIRED}), []),  # OpenAI-compatible
]  # fmt: skip


@pytest.mark.parametrize(("dep_id", "required", "lacks"), TABLE)
def test_table(dep_id: str, required: frozenset[Feature], lacks: list[Feature]) -> None:
    dep = DEPS[dep_id]
    assert missing(dep, required, CONFIG) == lacks
    assert can_serve(dep, required, CONFIG) is (not lacks)


OLLAMA = {"local": {"dialect": "ollama"}}


def test_the_dialect_chosen_in_provider_settings_decides() -> None:
    """Local servers: the verdict follows `providers.local.dialect` (Ollama cannot force a
    tool call or fetch an image URL; an OpenAI-compatible server can)."""
    ollama = LLMConfig.model_validate({"models": [MODELS[-1]], "providers": OLLAMA})
    need = frozenset({F.TOOLS, F.TOOL_CHOICE_REQUIRED, F.IMAGE_URL})
    assert missing(ollama.models[0], need, ollama) == [F.TOOL_CHOICE_REQUIRED, F.IMAGE_URL]
    assert can_serve(DEPS["local/llama"], need, CONFIG)


def test_config_override_can_add_a_capability() -> None:
    model = {**MODELS[-1], "capabilities": {"tool_choice_required": True}}
    cfg = LLMConfig.model_validate({"models": [model], "providers": OLLAMA})
    assert can_serve(cfg.models[0], frozenset({F.TOOLS, F.TOOL_CHOICE_REQUIRED}), cfg)


def test_incapable_ids_from_a_request() -> None:
    image = ChatMessage.model_validate(
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
        }
    )
    need = required_features(Features(), [image])
    assert need == {F.VISION, F.IMAGE_URL}
    bad = incapable_ids(CONFIG.models, need, CONFIG)
    assert bad == {"cohere/command-r-08-2024", "google/gemini-2.5-flash", "openai/gpt-4o"}
    assert incapable_ids(CONFIG.models, frozenset(), CONFIG) == frozenset()
