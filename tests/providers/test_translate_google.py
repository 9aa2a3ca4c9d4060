"""Gemini translation, both directions: `responseJsonSchema` / `parametersJsonSchema` (never the
OpenAPI-subset fields that reject additionalProperties), function-calling config, function
calls and named responses in history, inline images, sampling; and functionCall parts back
(request-fidelity.md §1-4, traps 1, 2, 3, 6)."""

from __future__ import annotations

import json

import pytest

from core.errors import BadRequest
from schemas.config import LLMProvider
from schemas.job import ChatMessage
from schemas.request import NamedToolChoice

from .feature_cases import (
    AS_OBJECT,
    AS_SCHEMA,
    CALL_1,
    HISTORY,
    HTTPS_IMAGE,
    PNG_B64,
    SCHEMA,
    TIME,
    WEATHER,
    WEATHER_PARAMS,
    adapter,
    built,
    calls,
    reply,
    req,
    user,
)

FLASH = "gemini-2.5-flash"
G3 = "gemini-3-pro-preview"


def body_for(model: str = FLASH, caps=None, **kw):
    return built(adapter(LLMProvider.GOOGLE, model, capabilities=caps), req(model_id=model, **kw))


def test_json_schema_as_response_json_schema_keeping_additional_properties():
    config = body_for(response_format=AS_SCHEMA)["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert "responseSchema" not in config  # the OpenAPI subset 400s on additionalProperties
    schema = config["responseJsonSchema"]
    assert schema["additionalProperties"] is False
    assert "$schema" not in schema  # outside the documented keyword list
    assert schema["properties"]["name"] == {"type": "string"}  # minLength is not in the list
    assert schema["properties"]["tags"]["minItems"] == 2
    assert schema["properties"]["kind"] == SCHEMA["properties"]["kind"]
    assert "strict" not in json.dumps(config)


def test_json_object_is_the_mime_type_alone():
    config = body_for(response_format=AS_OBJECT)["generationConfig"]
    assert config == {"maxOutputTokens": 50, "responseMimeType": "application/json"}


def test_property_names_that_look_like_keywords_survive_pruning():
    schema = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "pattern": "^a"},
            "default": {"type": "integer"},
        },
    }
    from schemas.request import JsonSchemaFormat, ResponseFormat

    fmt = ResponseFormat(type="json_schema", json_schema=JsonSchemaFormat(name="x", schema=schema))
    got = body_for(response_format=fmt)["generationConfig"]["responseJsonSchema"]
    assert got["properties"] == {"pattern": {"type": "string"}, "default": {"type": "integer"}}


CHOICES = [
    ({}, None),
    ({"tool_choice": "auto"}, {"mode": "AUTO"}),
    ({"tool_choice": "none"}, {"mode": "NONE"}),
    ({"tool_choice": "required"}, {"mode": "ANY"}),
    ({"tool_choice": NamedToolChoice(name="get_time")}, {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
]  # fmt: skip


@pytest.mark.parametrize(("features", "config"), CHOICES)
def test_function_declarations_and_calling_config(features, config):
    body = body_for(tools=(WEATHER, TIME), **features)
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather now",
                    "parametersJsonSchema": WEATHER_PARAMS,  # additionalProperties kept
                },
                {"name": "get_time"},
            ]
        }
    ]
    assert "parameters" not in body["tools"][0]["functionDeclarations"][0]
    assert body.get("toolConfig") == (None if config is None else {"functionCallingConfig": config})


def test_history_function_calls_named_responses_and_inline_image():
    body = body_for(messages=HISTORY)
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user", "user"]
    first, model, results, follow = body["contents"]
    assert first["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}
    assert model["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]
    # both results in one turn, named after the calls they answer; responses are objects
    assert results["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
        {"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}},
    ]
    assert follow["parts"] == [{"text": "Thanks. Summarise."}]


def test_gemini_3_history_calls_carry_a_stand_in_thought_signature():
    body = body_for(G3, messages=HISTORY)
    parts = body["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in parts[1]  # only the first call of a turn carries one


@pytest.mark.parametrize(
    ("content", "response"),
    [('{"a": 1}', {"a": 1}), ("[1, 2]", {"result": [1, 2]}), ("42", {"result": 42}), ("plain", {"result": "plain"})],
)  # fmt: skip
def test_function_response_is_always_an_object(content, response):
    messages = (
        ChatMessage(role="assistant", content=None, tool_calls=(CALL_1,)),
        ChatMessage(role="tool", tool_call_id="call_1", content=content),
    )
    part = body_for(messages=messages)["contents"][1]["parts"][0]
    assert part == {"functionResponse": {"name": "get_weather", "response": response}}


def test_sampling_in_generation_config():
    config = body_for(
        stop=("END",), top_p=0.4, seed=3, presence_penalty=0.5, frequency_penalty=-0.5
    )["generationConfig"]
    assert config == {
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
        "topP": 0.4,
        "seed": 3,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
    }


ORPHAN = (ChatMessage(role="tool", tool_call_id="nobody", content="x"),)
REFUSED = [
    (FLASH, None, {"messages": (user("see", HTTPS_IMAGE),)}, "image_url"),
    (FLASH, {"image_url": True}, {"messages": (user("see", HTTPS_IMAGE),)}, "by URL"),
    (FLASH, None, {"messages": (user("gif", "data:image/gif;base64,R0lG"),)}, "image/gif"),
    (FLASH, None, {"messages": ORPHAN}, "answers no earlier"),
    (FLASH, None, {"response_format": AS_SCHEMA, "tools": (WEATHER,)}, "json_with_tools"),
    (G3, None, {"presence_penalty": 0.1}, "penalties"),
    (FLASH, None, {"tools": (WEATHER,), "parallel_tool_calls": False}, "serial_tool_calls"),
    (FLASH, None, {"seed": 2**40}, "int32"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "caps", "features", "why"), REFUSED)
def test_refused_rather_than_dropped(model, caps, features, why):
    a = adapter(LLMProvider.GOOGLE, model, capabilities=caps)
    with pytest.raises(BadRequest, match=why):
        a.build_request(req(model_id=model, **features))


def test_json_with_tools_on_gemini_3():
    body = body_for(G3, response_format=AS_SCHEMA, tools=(WEATHER,))
    assert body["generationConfig"]["responseJsonSchema"]["type"] == "object"
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


def candidate(parts, finish="STOP"):
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2},
        "responseId": "r1",
    }


REPLY_CASES = [
    # Gemini says STOP with calls too: their presence decides (trap 3); ids are minted
    ([{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}], "STOP", "", "tool_calls",
     [("get_weather", {"city": "Oslo"})]),
    ([{"text": "Checking."}, {"functionCall": {"id": "fc1", "name": "get_time"}}], "STOP",
     "Checking.", "tool_calls", [("get_time", {})]),
    ([{"text": "thinking...", "thought": True}, {"text": '{"a": 1}'}], "STOP", '{"a": 1}', "stop", []),
    ([{"text": "cut"}], "MAX_TOKENS", "cut", "length", []),
]  # fmt: skip


@pytest.mark.parametrize(("parts", "finish_wire", "text", "finish", "tool_calls"), REPLY_CASES)
def test_reply(parts, finish_wire, text, finish, tool_calls):
    r = adapter(LLMProvider.GOOGLE).parse_reply(reply(candidate(parts, finish_wire)))
    assert (r.text, r.finish_reason) == (text, finish)
    assert [(name, args) for _, name, args in calls(r)] == tool_calls
    assert all(c.id for c in r.tool_calls)


def test_reply_ids_kept_or_minted_stably():
    parts = [
        {"functionCall": {"id": "fc1", "name": "get_time", "args": {}}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
    ]
    a = adapter(LLMProvider.GOOGLE)
    first = a.parse_reply(reply(candidate(parts)))
    again = a.parse_reply(reply(candidate(parts)))
    ids = [c.id for c in first.tool_calls]
    assert ids[0] == "fc1" and len(set(ids)) == 3
    assert ids == [c.id for c in again.tool_calls]
