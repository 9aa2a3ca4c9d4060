"""Anthropic Messages translation, both directions: native `output_config.format` or the
`json_tool_call` tool, tools and tool choice, tool history as blocks, images, sampling; and
tool_use blocks / refusals back (request-fidelity.md §1-4, traps 1, 3, 4)."""

from __future__ import annotations

import json

import pytest

from core.errors import BadRequest
from schemas.config import LLMProvider
from schemas.job import ChatMessage
from schemas.request import FunctionDef, NamedToolChoice, ToolCall, ToolSpec
from workers.providers.anthropic_features import family_version, has_native_json
from workers.providers.features import PERMISSIVE_SCHEMA

from .feature_cases import (
    AS_OBJECT,
    AS_SCHEMA,
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

NATIVE = "claude-sonnet-4-5-20250929"
OLD = "claude-3-5-haiku-20241022"
WEATHER_WIRE = {"name": "get_weather", "input_schema": WEATHER_PARAMS, "description": "Weather now"}
TIME_WIRE = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
FORCED_JSON = {"type": "tool", "name": "json_tool_call"}


def body_for(model: str, **kw):
    return built(adapter(LLMProvider.ANTHROPIC, model), req(model_id=model, **kw))


@pytest.mark.parametrize(
    ("model", "family", "native"),
    [
        (NATIVE, ("sonnet", (4, 5)), True),
        ("claude-opus-4-6", ("opus", (4, 6)), True),
        ("claude-haiku-4-5", ("haiku", (4, 5)), True),
        ("claude-opus-4-1-20250805", ("opus", (4, 1)), False),
        ("claude-sonnet-4-20250514", ("sonnet", (4, 0)), False),  # a date is not a minor
        (OLD, None, False),
    ],
)
def test_model_versions(model, family, native):
    assert (family_version(model), has_native_json(model)) == (family, native)


def test_json_schema_native_output_config_with_the_supported_subset():
    body = body_for(NATIVE, response_format=AS_SCHEMA)
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    schema = fmt["schema"]
    assert "$schema" not in schema and schema["additionalProperties"] is False
    assert schema["properties"]["name"] == {"type": "string", "description": "{minLength: 1}"}
    assert schema["properties"]["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "{minItems: 2}",
    }
    assert schema["properties"]["kind"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert schema["required"] == SCHEMA["required"]
    assert "tools" not in body and "tool_choice" not in body


# (model, features, tools expected, tool_choice expected) for JSON without native output
TRICK_CASES = [
    (OLD, {"response_format": AS_SCHEMA},
     [{"name": "json_tool_call", "input_schema": SCHEMA}], FORCED_JSON),
    # json_object has no schema: permissive, on every model (native output needs a schema)
    (NATIVE, {"response_format": AS_OBJECT},
     [{"name": "json_tool_call", "input_schema": PERMISSIVE_SCHEMA}], FORCED_JSON),
    # caller tools + auto: answering is calling json_tool_call, so some tool must be called
    (OLD, {"response_format": AS_SCHEMA, "tools": (WEATHER,)},
     [WEATHER_WIRE, {"name": "json_tool_call", "input_schema": SCHEMA}],
     {"type": "any", "disable_parallel_tool_use": True}),
    # caller tools + none: JSON forced, the caller's tools declared but not called
    (OLD, {"response_format": AS_SCHEMA, "tools": (WEATHER,), "tool_choice": "none"},
     [WEATHER_WIRE, {"name": "json_tool_call", "input_schema": SCHEMA}], FORCED_JSON),
    # required / named: this turn is a tool call anyway; the caller's choice stands
    (OLD, {"response_format": AS_SCHEMA, "tools": (WEATHER,), "tool_choice": "required"},
     [WEATHER_WIRE], {"type": "any"}),
    (OLD, {"response_format": AS_OBJECT, "tools": (WEATHER, TIME),
           "tool_choice": NamedToolChoice(name="get_time")},
     [WEATHER_WIRE, TIME_WIRE], {"type": "tool", "name": "get_time"}),
]  # fmt: skip


@pytest.mark.parametrize(("model", "features", "tools", "choice"), TRICK_CASES)
def test_json_by_the_tool_trick(model, features, tools, choice):
    body = body_for(model, **features)
    assert (body["tools"], body["tool_choice"]) == (tools, choice)
    assert "output_config" not in body


def test_json_schema_with_tools_on_a_native_model_keeps_the_callers_choice():
    body = body_for(NATIVE, response_format=AS_SCHEMA, tools=(WEATHER,), tool_choice="auto")
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert (body["tools"], body["tool_choice"]) == ([WEATHER_WIRE], {"type": "auto"})


@pytest.mark.parametrize(("override", "native"), [(False, False), (True, True), (None, True)])
def test_native_output_can_be_turned_off_per_deployment(override, native):
    caps = None if override is None else {"json_with_tools": override}
    a = adapter(LLMProvider.ANTHROPIC, NATIVE, capabilities=caps)
    body = built(a, req(model_id=NATIVE, response_format=AS_SCHEMA))
    assert ("output_config" in body) is native


CHOICE_CASES = [
    ({}, None),
    ({"tool_choice": "auto"}, {"type": "auto"}),
    ({"tool_choice": "required"}, {"type": "any"}),
    ({"tool_choice": "none"}, {"type": "none"}),
    ({"tool_choice": NamedToolChoice(name="get_weather")}, {"type": "tool", "name": "get_weather"}),
    ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
    ({"tool_choice": "required", "parallel_tool_calls": False},
     {"type": "any", "disable_parallel_tool_use": True}),
]  # fmt: skip


@pytest.mark.parametrize(("features", "choice"), CHOICE_CASES)
def test_tools_and_tool_choice(features, choice):
    body = body_for(OLD, tools=(WEATHER, TIME), **features)
    assert body["tools"] == [WEATHER_WIRE, TIME_WIRE]
    assert body.get("tool_choice") == choice


def test_strict_tools_only_with_native_structured_output():
    strict = ToolSpec(function=FunctionDef(name="f", parameters={"type": "object"}, strict=True))
    native = body_for(NATIVE, tools=(strict,))["tools"][0]
    assert native == {
        "name": "f",
        "strict": True,
        "input_schema": {"type": "object", "additionalProperties": False},
    }
    assert "strict" not in body_for(OLD, tools=(strict,))["tools"][0]


def test_tool_history_as_blocks_in_alternating_turns():
    body = body_for(OLD, messages=HISTORY + (user("and this?", HTTPS_IMAGE),))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    first, calls_turn, results_turn = body["messages"]
    assert first["content"] == [
        {"type": "text", "text": "What is in this picture, and the weather in Paris?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
    ]
    assert calls_turn["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
    ]
    assert results_turn["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp": 21}'},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "12:00"},
        {"type": "text", "text": "Thanks. Summarise."},
        {"type": "text", "text": "and this?"},
        {"type": "image", "source": {"type": "url", "url": HTTPS_IMAGE}},
    ]
    # Tools used in the history must be declared; none were offered, so none may be called.
    assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time"]
    assert body["tool_choice"] == {"type": "none"}


def test_sampling():
    body = body_for(OLD, temperature=0.2, stop=("END",), top_p=0.9, user="u-1")
    assert body["stop_sequences"] == ["END"]
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    assert body["metadata"] == {"user_id": "u-1"}


REFUSED = [
    (OLD, None, {"seed": 1}, "seed"),
    (OLD, None, {"presence_penalty": 0.5}, "penalties"),
    (OLD, {"seed": True}, {"seed": 1}, "no seed"),  # an override cannot invent a field
    (NATIVE, None, {"top_p": 0.5}, "top_p"),  # rejected next to temperature (trap 4)
    (NATIVE, {"top_p": True}, {"top_p": 0.5, "temperature": 0.3}, "not both"),
    (OLD, None, {"stop": (" ",)}, "cannot honour blank_stop"),  # a capability, so refused at submit
    (OLD, None, {"tools": (ToolSpec(function=FunctionDef(name="json_tool_call")),)}, "reserved"),
    (OLD, None, {"messages": (ChatMessage(role="assistant", content=None, tool_calls=(
        ToolCall(id="c", name="f", arguments="[1]"),)),)}, "JSON object"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "caps", "features", "why"), REFUSED)
def test_refused_rather_than_dropped(model, caps, features, why):
    a = adapter(LLMProvider.ANTHROPIC, model, capabilities=caps)
    with pytest.raises(BadRequest, match=why):
        a.build_request(req(model_id=model, **features))


def test_top_p_without_temperature_on_a_new_model_when_overridden():
    a = adapter(LLMProvider.ANTHROPIC, NATIVE, capabilities={"top_p": True})
    body = built(a, req(model_id=NATIVE, top_p=0.5))
    assert body["top_p"] == 0.5 and "temperature" not in body


def message(content, stop_reason="end_turn"):
    return {
        "id": "msg_1",
        "model": OLD,
        "content": content,
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }


TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
REPLY_CASES = [
    ([{"type": "text", "text": "Let me look."}, TOOL_USE], "tool_use", "Let me look.",
     "tool_calls", [("toolu_1", "get_weather", {"city": "Oslo"})], None),
    # the trick's tool: its input is the JSON answer, serialised once
    ([{"type": "tool_use", "id": "t", "name": "json_tool_call", "input": {"a": [1, "x"]}}],
     "tool_use", '{"a":[1,"x"]}', "stop", [], None),
    ([{"type": "text", "text": "I can't do that."}], "refusal", "I can't do that.",
     "content_filter", [], "I can't do that."),
    ([], "refusal", "", "content_filter", [], "refused (stop_reason: refusal)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "stop", "text", "finish", "tool_calls", "refusal"), REPLY_CASES
)
def test_reply(content, stop, text, finish, tool_calls, refusal):
    r = adapter(LLMProvider.ANTHROPIC).parse_reply(reply(message(content, stop)))
    assert (r.text, r.finish_reason, calls(r), r.refusal) == (text, finish, tool_calls, refusal)


def test_object_arguments_are_encoded_exactly_once():
    inner = '{"a": 1}'  # a string value that happens to look like JSON stays a string
    block = {**TOOL_USE, "input": {"q": inner}}
    r = adapter(LLMProvider.ANTHROPIC).parse_reply(reply(message([block], "tool_use")))
    assert json.loads(r.tool_calls[0].arguments) == {"q": inner}
