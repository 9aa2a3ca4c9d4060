"""Dev-only cross-check: the feature-rich request bodies our adapters build validate against the
official SDKs' own request types (OpenAI and Anthropic TypedDicts, google-genai's pydantic
models with unknown fields forbidden, Cohere's v2 types). A misspelt or misplaced wire field
fails here without any server. Skipped per provider when its SDK is not installed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ConfigDict, TypeAdapter

from schemas.config import LLMProvider
from schemas.request import NamedToolChoice

from .feature_cases import (
    AS_OBJECT,
    AS_SCHEMA,
    HISTORY,
    HTTPS_IMAGE,
    TIME,
    WEATHER,
    adapter,
    built,
    req,
    user,
)

pytestmark = pytest.mark.sdk
FORBID = ConfigDict(extra="forbid")
IMAGES = HISTORY + (user("and this one?", HTTPS_IMAGE),)
SAMPLING = {"stop": ("END",), "seed": 4, "presence_penalty": 0.5, "frequency_penalty": 0.25}


def sdk(name: str) -> Any:
    return pytest.importorskip(name, reason=f"SDK {name!r} not installed (pip install -e .[dev])")


def top_level_forbidding(params: Any) -> TypeAdapter:
    """The TypedDict with unknown top-level keys refused (nested ones are type-checked)."""
    return TypeAdapter(list[params], config=FORBID)


OPENAI_REQUESTS = [
    {"messages": IMAGES, "tools": (WEATHER, TIME), "tool_choice": NamedToolChoice(name="get_time"),
     "response_format": AS_SCHEMA, "parallel_tool_calls": False, "top_p": 0.5, "user": "u",
     **SAMPLING},
    {"response_format": AS_OBJECT, "tools": (WEATHER,), "tool_choice": "required"},
]  # fmt: skip


@pytest.mark.parametrize("provider", [LLMProvider.OPENAI, LLMProvider.HUGGINGFACE])
@pytest.mark.parametrize("features", OPENAI_REQUESTS)
def test_openai_bodies(provider, features):
    params = sdk("openai").types.chat.completion_create_params
    body = built(adapter(provider), req(temperature=0.3, **features))
    top_level_forbidding(params.CompletionCreateParamsNonStreaming).validate_python([body])


ANTHROPIC_REQUESTS = [
    ("claude-3-5-haiku-20241022", {"messages": IMAGES, "response_format": AS_SCHEMA,
                                   "tools": (WEATHER, TIME), "stop": ("END",), "user": "u"}),
    ("claude-3-5-haiku-20241022", {"messages": IMAGES}),  # history tools declared, choice none
    ("claude-sonnet-4-5-20250929", {"response_format": AS_SCHEMA, "tools": (WEATHER,),
                                    "tool_choice": "required", "parallel_tool_calls": False}),
    ("claude-sonnet-4-5-20250929", {"response_format": AS_OBJECT}),
]  # fmt: skip


@pytest.mark.parametrize(("model", "features"), ANTHROPIC_REQUESTS)
def test_anthropic_bodies(model, features):
    params = sdk("anthropic").types.message_create_params
    body = built(adapter(LLMProvider.ANTHROPIC, model), req(model_id=model, **features))
    # SDK 2.x types follow a newer API version without temperature/top_p; we pin 2023-06-01.
    body.pop("temperature", None)
    body.pop("top_p", None)
    top_level_forbidding(params.MessageCreateParamsNonStreaming).validate_python([body])


GOOGLE_REQUESTS = [
    ("gemini-2.5-flash", {"messages": HISTORY, "tools": (WEATHER, TIME),
                          "tool_choice": NamedToolChoice(name="get_weather"), "top_p": 0.4,
                          **SAMPLING}),
    ("gemini-2.5-flash", {"response_format": AS_SCHEMA}),
    ("gemini-3-pro-preview", {"messages": HISTORY, "response_format": AS_OBJECT,
                              "tools": (WEATHER,), "tool_choice": "none"}),
]  # fmt: skip


@pytest.mark.parametrize(("model", "features"), GOOGLE_REQUESTS)
def test_google_bodies(model, features):
    types = sdk("google.genai.types")
    body = built(adapter(LLMProvider.GOOGLE, model), req(model_id=model, **features))
    checks = {
        "contents": TypeAdapter(list[types.Content]),
        "tools": TypeAdapter(list[types.Tool]),
        "toolConfig": TypeAdapter(types.ToolConfig),
        "generationConfig": TypeAdapter(types.GenerationConfig),
        "systemInstruction": TypeAdapter(types.Content),
    }
    assert set(body) <= set(checks)
    for key, value in body.items():
        checks[key].validate_python(value)  # extra="forbid": unknown fields fail
    # The JSON-Schema fields, never the OpenAPI-subset ones (trap 2).
    config = types.GenerationConfig.model_validate(body["generationConfig"])
    assert config.response_schema is None
    for tool in body.get("tools", ()):
        for decl in types.Tool.model_validate(tool).function_declarations or ():
            assert decl.parameters is None


COHERE_REQUESTS = [
    ("command-a-vision-07-2025", {"messages": IMAGES, "tools": (WEATHER, TIME),
                                  "tool_choice": NamedToolChoice(name="get_time"), "top_p": 0.5,
                                  **SAMPLING}),
    ("command-a-03-2025", {"response_format": AS_SCHEMA}),
]  # fmt: skip


@pytest.mark.parametrize(("model", "features"), COHERE_REQUESTS)
def test_cohere_bodies(model, features):
    cohere = sdk("cohere")
    body = built(adapter(LLMProvider.COHERE, model), req(model_id=model, **features))
    for message in TypeAdapter(list[cohere.ChatMessageV2]).validate_python(body["messages"]):
        assert message.role in ("user", "assistant", "tool", "system")
    if "tools" in body:
        TypeAdapter(list[cohere.ToolV2]).validate_python(body["tools"])
    if "response_format" in body:
        fmt = TypeAdapter(cohere.ResponseFormatV2).validate_python(body["response_format"])
        assert fmt.json_schema == features["response_format"].schema_
