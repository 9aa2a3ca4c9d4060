"""Routing skips deployments that cannot honour a job's features (issue 15, Deliver 3): a table
of (features, deployments' capabilities) -> plan, and the reason when nothing can serve."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.config import LLMConfig
from schemas.job import ChatMessage
from schemas.request import Feature, Features
from workers.providers import capabilities_of
from workers.routing.health import HealthSnapshot
from workers.routing.select import (
    IMAGE_ESTIMATE_TOKENS,
    RouteRequest,
    estimate_prompt_tokens,
    rank_candidates,
    unserved_feature,
)

NOW = 1_700_000_000.0
PNG = "data:image/png;base64,iVBORw0KGgo="
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
SCHEMA_FMT = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}

# "chat": OpenAI (everything), Cohere (no JSON + tools, no images), Ollama (few features);
# fallback "backup": Anthropic. Priority strategy, so the plan order is the config order.
MODELS = [
    {"name": "chat", "provider": "openai", "model_id": "gpt", "priority": 1},
    {"name": "chat", "provider": "cohere", "model_id": "command-a", "priority": 2},
    {"name": "chat", "provider": "local", "model_id": "llama", "priority": 3},
    {"name": "backup", "provider": "anthropic", "model_id": "claude-haiku-4-5", "priority": 4},
]
OA, CO, LO, AN = "openai/gpt", "cohere/command-a", "local/llama", "anthropic/claude-haiku-4-5"
KEYS = dict.fromkeys((OA, CO, LO, AN), True)


def config(**caps: dict[str, bool]) -> LLMConfig:
    models = [dict(m) for m in MODELS]
    for m in models:
        if m["provider"] in caps:
            m["capabilities"] = caps[m["provider"]]
    return LLMConfig.model_validate(
        {
            "providers": {"local": {"dialect": "ollama"}},
            "models": models,
            "fallbacks": {"chat": ["backup"]},
            "routing": {"strategy": "priority"},
        }
    )


def user(*parts: Any) -> ChatMessage:
    return ChatMessage.model_validate({"role": "user", "content": list(parts) or "hi"})


def plan(req: RouteRequest, cfg: LLMConfig) -> list[str]:
    found = rank_candidates(req, cfg, HealthSnapshot(), {}, KEYS, NOW)
    return [c.deployment_id for c in found]


IMAGE = user({"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": PNG}})  # fmt: skip

CASES: list[tuple[str, tuple[ChatMessage, ...], dict[str, Any], dict[str, Any], list[str]]] = [
    ("plain text: every deployment", (user(),), {}, {}, [OA, CO, LO, AN]),
    (
        "json + tools: not Cohere",
        (user(),),
        {"tools": [TOOL], "response_format": SCHEMA_FMT},
        {},
        [OA, LO, AN],
    ),  # fmt: skip
    ("an image: not Cohere's text model", (IMAGE,), {}, {}, [OA, LO, AN]),
    (
        "an image, vision switched off on OpenAI",
        (IMAGE,),
        {},
        {"openai": {"vision": False}},
        [LO, AN],
    ),  # fmt: skip
    ("seed: Anthropic has none", (user(),), {"sampling": {"seed": 7}}, {}, [OA, CO, LO]),
    (
        "a capability added in the config",
        (user(),),
        {"tools": [TOOL], "response_format": SCHEMA_FMT},
        {"cohere": {"json_with_tools": True}},
        [OA, CO, LO, AN],
    ),  # fmt: skip
]


@pytest.mark.parametrize(
    ("messages", "features", "caps", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_plan_skips_what_cannot_serve(
    messages: tuple[ChatMessage, ...],
    features: dict[str, Any],
    caps: dict[str, Any],
    expected: list[str],
) -> None:
    cfg = config(**caps)
    req = RouteRequest("chat", messages, features=Features.model_validate(features))
    assert plan(req, cfg) == expected
    # the rule itself: exactly the deployments whose capabilities hold every needed feature
    need = req.needs()
    able = [m.deployment_id for m in cfg.models if need <= capabilities_of(m, cfg)]
    assert plan(req, cfg) == able
    assert unserved_feature(req, cfg) is None


def test_nothing_can_serve_names_the_feature() -> None:
    cfg = config(openai={"vision": False}, local={"vision": False}, anthropic={"vision": False})
    req = RouteRequest("chat", (IMAGE,))
    assert plan(req, cfg) == []
    assert unserved_feature(req, cfg) == f"no deployment of chat supports {Feature.VISION}"


def test_the_first_missing_feature_in_declaration_order_is_named() -> None:
    cfg = config(openai={"seed": False, "tools": False}, local={"seed": False, "tools": False})
    features = Features.model_validate({"tools": [TOOL], "sampling": {"seed": 1}})
    # Anthropic has tools but no seed; Cohere has both tools and seed
    assert plan(RouteRequest("chat", (user(),), features=features), cfg) == [CO]
    cfg = config(
        openai={"seed": False}, cohere={"seed": False}, local={"seed": False, "tools": False}
    )
    req = RouteRequest("chat", (user(),), features=features)
    assert unserved_feature(req, cfg) == "no deployment of chat supports seed"


def test_estimate_handles_parts_images_and_tool_calls() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "abcd", "arguments": "{}"}}
    messages = (
        IMAGE,
        ChatMessage.model_validate({"role": "assistant", "content": None, "tool_calls": [call]}),
        ChatMessage(role="tool", content="done", tool_call_id="c"),
    )
    # "what is it?" 11 + name 4 + args 2 + "done" 4 = 21 bytes -> 6 tokens; 3 x 4 framing
    assert estimate_prompt_tokens(messages, None) == 6 + 12 + IMAGE_ESTIMATE_TOKENS
