"""Cohere v2 and Ollama `/api/chat` translation, both directions (request-fidelity.md §1-4,
traps 1, 3, 7, 9)."""

from __future__ import annotations

import json

import pytest

from core.errors import BadRequest
from schemas.config import LLMProvider
from schemas.request import FunctionDef, NamedToolChoice, ToolSpec

from .feature_cases import (
    AS_OBJECT,
    AS_SCHEMA,
    HISTORY,
    HTTPS_IMAGE,
    PNG,
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

WEATHER_WIRE = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER_PARAMS},
}
TIME_WIRE = {"type": "function", "function": {"name": "get_time"}}
TIME_COHERE = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def cohere(model: str = "command-a-03-2025", caps=None, **kw):
    return built(adapter(LLMProvider.COHERE, model, capabilities=caps), req(model_id=model, **kw))


COHERE_CASES = [
    ({"response_format": AS_SCHEMA}, {"response_format": {"type": "json_object", "json_schema": SCHEMA}}),
    ({"response_format": AS_OBJECT}, {"response_format": {"type": "json_object"}}),
    ({"tools": (WEATHER, TIME)}, {"tools": [WEATHER_WIRE, TIME_COHERE]}),  # parameters required
    ({"tools": (WEATHER,), "tool_choice": "required"}, {"tool_choice": "REQUIRED"}),
    ({"tools": (WEATHER,), "tool_choice": "none"}, {"tool_choice": "NONE"}),
    # no named choice on Cohere: only that tool is offered, and a call is required
    ({"tools": (WEATHER, TIME), "tool_choice": NamedToolChoice(name="get_time")},
     {"tools": [TIME_COHERE], "tool_choice": "REQUIRED"}),
    ({"stop": ("END",), "seed": 9}, {"stop_sequences": ["END"], "seed": 9}),
    ({"top_p": 0.5}, {"p": 0.5}),
    ({"top_p": 1.0}, {"p": 0.99}),  # Cohere's p range is 0.01..0.99
    ({"presence_penalty": 0.3, "frequency_penalty": 1.0},
     {"presence_penalty": 0.3, "frequency_penalty": 1.0}),
]  # fmt: skip


@pytest.mark.parametrize(("features", "expected"), COHERE_CASES)
def test_cohere_request(features, expected):
    body = cohere(**features)
    assert {k: body[k] for k in expected} == expected
    if "tools" in body:
        assert "tool_choice" in expected or "tool_choice" not in body  # auto = omitted


def test_cohere_strict_tools_flag_instead_of_per_tool_strict():
    strict = ToolSpec(function=FunctionDef(name="f", parameters={"type": "object"}, strict=True))
    body = cohere(tools=(strict,))
    assert body["strict_tools"] is True
    assert body["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]


def test_cohere_history_and_images_on_a_vision_model():
    body = cohere("command-a-vision-07-2025", messages=HISTORY + (user("and?", HTTPS_IMAGE),))
    msgs = body["messages"]
    assert msgs[0]["content"][1] == {"type": "image_url", "image_url": {"url": PNG}}
    assert msgs[1] == {
        "role": "assistant",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
        ],
    }  # fmt: skip
    assert msgs[2] == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_1"}
    assert msgs[5]["content"][1]["image_url"] == {"url": HTTPS_IMAGE}


COHERE_REFUSED = [
    ("command-a-03-2025", None, {"response_format": AS_SCHEMA, "tools": (WEATHER,)}, "json_with_tools"),
    ("command-a-03-2025", {"json_with_tools": True}, {"response_format": AS_OBJECT, "tools": (WEATHER,)},
     "together with tools"),
    ("command-a-03-2025", None, {"presence_penalty": -0.5}, "0..1"),
    ("command-a-03-2025", None, {"frequency_penalty": 1.5}, "0..1"),
    ("command-a-03-2025", None, {"messages": (user("see", PNG),)}, "vision"),
    ("command-a-03-2025", None, {"tools": (WEATHER,), "parallel_tool_calls": False}, "serial_tool_calls"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "caps", "features", "why"), COHERE_REFUSED)
def test_cohere_refused_rather_than_dropped(model, caps, features, why):
    with pytest.raises(BadRequest, match=why):
        cohere(model, caps, **features)


def cohere_reply(message, finish="COMPLETE"):
    return {"id": "c1", "finish_reason": finish, "message": {"role": "assistant", **message},
            "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 2}}}  # fmt: skip


COHERE_REPLIES = [
    ({"content": [{"type": "text", "text": '{"a": 1}'}]}, "COMPLETE", '{"a": 1}', "stop", []),
    ({"tool_plan": "I will call it.", "tool_calls": [{"id": "tc1", "type": "function",
      "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}, "TOOL_CALL", "",
     "tool_calls", [("tc1", "get_weather", {"city": "Oslo"})]),
]  # fmt: skip


@pytest.mark.parametrize(("message", "wire", "text", "finish", "tool_calls"), COHERE_REPLIES)
def test_cohere_reply(message, wire, text, finish, tool_calls):
    r = adapter(LLMProvider.COHERE).parse_reply(reply(cohere_reply(message, wire)))
    assert (r.text, r.finish_reason, calls(r)) == (text, finish, tool_calls)


# ---- Ollama ---------------------------------------------------------------------------------


def ollama(caps=None, **kw):
    return built(adapter(LLMProvider.LOCAL, capabilities=caps, dialect="ollama"), req(**kw))


OLLAMA_CASES = [
    ({"response_format": AS_OBJECT}, {"format": "json"}),
    ({"response_format": AS_SCHEMA}, {"format": SCHEMA}),
    ({"tools": (WEATHER,)}, {"tools": [WEATHER_WIRE]}),
    ({"tools": (WEATHER,), "tool_choice": "auto"}, {"tools": [WEATHER_WIRE]}),
    ({"stop": ("END",), "top_p": 0.3, "seed": 5, "presence_penalty": 0.1, "frequency_penalty": 0.2},
     {"options": {"num_predict": 50, "stop": ["END"], "top_p": 0.3, "seed": 5,
                  "presence_penalty": 0.1, "frequency_penalty": 0.2}}),
]  # fmt: skip


@pytest.mark.parametrize(("features", "expected"), OLLAMA_CASES)
def test_ollama_request(features, expected):
    body = ollama(**features)
    assert {k: body[k] for k in expected} == expected
    assert body["stream"] is False and "tool_choice" not in body


def test_ollama_history_object_arguments_tool_names_raw_images():
    msgs = ollama(messages=HISTORY)["messages"]
    assert msgs[0] == {
        "role": "user",
        "content": "What is in this picture, and the weather in Paris?",
        "images": [PNG_B64],  # raw base64, not a data: URL
    }
    assert msgs[1]["tool_calls"] == [
        {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"id": "call_2", "function": {"name": "get_time", "arguments": {}}},
    ]
    assert msgs[3] == {
        "role": "tool",
        "content": "12:00",
        "tool_name": "get_time",
        "tool_call_id": "call_2",
    }


OLLAMA_REFUSED = [
    (None, {"tools": (WEATHER,), "tool_choice": "required"}, "tool_choice_required"),
    (None, {"tools": (WEATHER,), "tool_choice": NamedToolChoice(name="get_weather")}, "tool_choice_named"),
    (None, {"messages": (user("see", HTTPS_IMAGE),)}, "image_url"),
    ({"tool_choice_none": True}, {"tools": (WEATHER,), "tool_choice": "none"}, "no tool_choice"),
    ({"image_url": True}, {"messages": (user("see", HTTPS_IMAGE),)}, "by URL"),
]  # fmt: skip


@pytest.mark.parametrize(("caps", "features", "why"), OLLAMA_REFUSED)
def test_ollama_refused_rather_than_dropped(caps, features, why):
    with pytest.raises(BadRequest, match=why):
        ollama(caps, **features)


def test_ollama_reply_object_arguments_encoded_once_and_ids_minted():
    data = {
        "model": "llama3.1",
        "message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo", "n": "{}"}}}]},
        "done": True, "done_reason": "stop", "prompt_eval_count": 4, "eval_count": 2,
    }  # fmt: skip
    r = adapter(LLMProvider.LOCAL, dialect="ollama").parse_reply(reply(data))
    assert r.finish_reason == "tool_calls"  # Ollama says stop: the calls decide
    assert json.loads(r.tool_calls[0].arguments) == {"city": "Oslo", "n": "{}"}
    assert r.tool_calls[0].id.startswith("call_")
