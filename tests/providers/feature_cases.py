"""Shared inputs for the translation tests: a tool, a schema, images, a tool-call history, and
builders for adapters (pure: requests are built, never sent) and replies."""

from __future__ import annotations

import json
from typing import Any

import httpx

from schemas.config import LLMConfig, LLMModelConfig, LLMProvider
from schemas.job import ChatMessage
from schemas.request import (
    Features,
    FunctionDef,
    ImagePart,
    ImageUrl,
    JsonSchemaFormat,
    ResponseFormat,
    Sampling,
    TextPart,
    ToolCall,
    ToolSpec,
)
from workers.providers import build_adapter
from workers.providers.base import ProviderAdapter, ProviderRequest

CLIENT = httpx.Client()  # builds requests only; nothing is sent

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = ToolSpec(
    function=FunctionDef(name="get_weather", description="Weather now", parameters=WEATHER_PARAMS)
)
TIME = ToolSpec(function=FunctionDef(name="get_time"))
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "kind": {"oneOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name", "tags", "kind"],
    "additionalProperties": False,
}
AS_SCHEMA = ResponseFormat(
    type="json_schema", json_schema=JsonSchemaFormat(name="person", schema=SCHEMA, strict=True)
)
AS_OBJECT = ResponseFormat(type="json_object")
PNG_B64 = "iVBORw0KGgoAAAANSUhEUg=="
PNG = f"data:image/png;base64,{PNG_B64}"
HTTPS_IMAGE = "https://example.com/cat.jpg"
CALL_1 = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
CALL_2 = ToolCall(id="call_2", name="get_time", arguments="{}")


def user(*parts: str) -> ChatMessage:
    """A user turn of text and images (a part starting with data: or https: is an image)."""
    built = tuple(
        ImagePart(image_url=ImageUrl(url=p))
        if p.startswith(("data:", "https:"))
        else TextPart(text=p)
        for p in parts
    )
    return ChatMessage(role="user", content=built)


# A turn with an image, two parallel calls, their two results, and a follow-up question.
HISTORY = (
    user("What is in this picture, and the weather in Paris?", PNG),
    ChatMessage(role="assistant", content=None, tool_calls=(CALL_1, CALL_2)),
    ChatMessage(role="tool", tool_call_id="call_1", content='{"temp": 21}'),
    ChatMessage(role="tool", tool_call_id="call_2", content="12:00"),
    ChatMessage(role="user", content="Thanks. Summarise."),
)
PLAIN = (ChatMessage(role="user", content="Hello, json please."),)


def adapter(
    provider: LLMProvider,
    model_id: str = "m",
    *,
    capabilities: dict[str, bool] | None = None,
    **settings: Any,
) -> ProviderAdapter:
    settings.setdefault("api_key", "sk-features-0123")
    config = LLMConfig(
        providers={provider: settings},
        models=[
            LLMModelConfig(
                name="m", model_id=model_id, provider=provider, capabilities=capabilities
            )
        ],
    )
    return build_adapter(config.models[0], config, CLIENT)


def req(
    messages: tuple[ChatMessage, ...] = PLAIN,
    model_id: str = "m",
    temperature: float | None = None,
    **features: Any,
) -> ProviderRequest:
    sampling = {
        k: features.pop(k)
        for k in list(features)
        if k in ("stop", "top_p", "seed", "presence_penalty", "frequency_penalty", "user")
    }
    return ProviderRequest(
        model_id=model_id,
        messages=messages,
        max_tokens=50,
        temperature=temperature,
        features=Features(**features, sampling=Sampling(**sampling)),
    )


def built(a: ProviderAdapter, r: ProviderRequest) -> dict[str, Any]:
    return json.loads(a.build_request(r).content)


def reply(data: Any) -> httpx.Response:
    return httpx.Response(200, json=data, request=httpx.Request("POST", "https://x.invalid"))


def calls(r: Any) -> list[tuple[str, str, Any]]:
    """(id, name, arguments as parsed JSON) of a reply's tool calls."""
    return [(c.id, c.name, json.loads(c.arguments)) for c in r.tool_calls]
