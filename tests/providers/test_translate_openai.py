"""OpenAI-shaped translation (OpenAI, the HF router, local OpenAI-compatible servers), both
directions: request features pass through by OpenAI's names; replies give tool calls with
JSON-text arguments, refusals, and `tool_calls` as the finish whenever calls are present."""

from __future__ import annotations

import dataclasses
import json

import pytest

from schemas.config import LLMProvider
from schemas.request import NamedToolChoice

from .feature_cases import (
    AS_OBJECT,
    AS_SCHEMA,
    HISTORY,
    HTTPS_IMAGE,
    PNG,
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

OPENAI_SHAPED = [LLMProvider.OPENAI, LLMProvider.HUGGINGFACE, LLMProvider.LOCAL]
WEATHER_WIRE = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER_PARAMS},
}

# (features given to req(), the body fields they must become)
REQUEST_CASES = [
    ({"response_format": AS_OBJECT}, {"response_format": {"type": "json_object"}}),
    (
        {"response_format": AS_SCHEMA},
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": SCHEMA, "strict": True},
            }
        },
    ),
    ({"tools": (WEATHER,)}, {"tools": [WEATHER_WIRE]}),
    ({"tools": (WEATHER,), "tool_choice": "required"}, {"tool_choice": "required"}),
    ({"tools": (WEATHER,), "tool_choice": "none"}, {"tool_choice": "none"}),
    (
        {"tools": (WEATHER, TIME), "tool_choice": NamedToolChoice(name="get_time")},
        {
            "tools": [WEATHER_WIRE, {"type": "function", "function": {"name": "get_time"}}],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        },
    ),
    ({"tools": (WEATHER,), "parallel_tool_calls": False}, {"parallel_tool_calls": False}),
    ({"stop": ("END", "\n\n")}, {"stop": ["END", "\n\n"]}),
    (
        {"top_p": 0.5, "seed": 7, "presence_penalty": -1.5, "frequency_penalty": 2.0},
        {"top_p": 0.5, "seed": 7, "presence_penalty": -1.5, "frequency_penalty": 2.0},
    ),
    ({"user": "tenant-42"}, {"user": "tenant-42"}),
]


@pytest.mark.parametrize("provider", OPENAI_SHAPED)
@pytest.mark.parametrize(("features", "expected"), REQUEST_CASES)
def test_features_pass_through_by_openai_names(provider, features, expected):
    body = built(adapter(provider), req(**features))
    assert {k: body[k] for k in expected} == expected


def test_nothing_asked_nothing_sent():
    body = built(adapter(LLMProvider.OPENAI), req())
    assert set(body) == {"model", "messages", "max_completion_tokens"}


@pytest.mark.parametrize("provider", OPENAI_SHAPED)
def test_parts_tool_calls_and_results_in_openai_form(provider):
    body = built(adapter(provider), req(HISTORY + (user("and this?", HTTPS_IMAGE),)))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in this picture, and the weather in Paris?"},
        {"type": "image_url", "image_url": {"url": PNG}},
    ]
    assert body["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            },
        ],
    }
    assert body["messages"][2] == {
        "role": "tool",
        "content": '{"temp": 21}',
        "tool_call_id": "call_1",
    }
    assert body["messages"][5]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": HTTPS_IMAGE},
    }


def completion(message: dict, finish: str = "stop") -> dict:
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }


CALL_WIRE = {
    "id": "call_a",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}

# (reply message, finish_reason on the wire, text, finish, calls, refusal)
REPLY_CASES = [
    ({"content": '{"a": 1}'}, "stop", '{"a": 1}', "stop", [], None),
    ({"content": None, "tool_calls": [CALL_WIRE]}, "tool_calls", "", "tool_calls",
     [("call_a", "get_weather", {"city": "Oslo"})], None),
    # A forced named tool ends with `stop` on OpenAI: the calls decide (trap 3).
    ({"content": None, "tool_calls": [CALL_WIRE]}, "stop", "", "tool_calls",
     [("call_a", "get_weather", {"city": "Oslo"})], None),
    ({"content": None, "refusal": "I can't help with that."}, "stop", "", "stop", [],
     "I can't help with that."),
    ({"content": "cut", "tool_calls": [CALL_WIRE]}, "length", "cut", "length",
     [("call_a", "get_weather", {"city": "Oslo"})], None),
]  # fmt: skip


@pytest.mark.parametrize("provider", OPENAI_SHAPED)
@pytest.mark.parametrize(
    ("message", "wire_finish", "text", "finish", "tool_calls", "refusal"), REPLY_CASES
)
def test_reply_tool_calls_refusal_finish(provider, message, wire_finish, text, finish, tool_calls, refusal):  # fmt: skip
    r = adapter(provider).parse_reply(reply(completion(message, wire_finish)))
    assert (r.text, r.finish_reason, calls(r), r.refusal) == (text, finish, tool_calls, refusal)


def test_arguments_stay_the_text_sent_never_re_encoded():
    raw = '{"city": "S\\u00e3o Paulo", "days": [1, 2]}'
    wire = {**CALL_WIRE, "function": {"name": "get_weather", "arguments": raw}}
    r = adapter(LLMProvider.OPENAI).parse_reply(reply(completion({"tool_calls": [wire]})))
    assert r.tool_calls[0].arguments == raw


def test_object_arguments_from_a_compatible_server_are_encoded_once():
    wire = {"id": None, "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    r = adapter(LLMProvider.LOCAL).parse_reply(reply(completion({"tool_calls": [wire]})))
    assert json.loads(r.tool_calls[0].arguments) == {"city": "Oslo"}  # one decode: an object
    assert r.tool_calls[0].id.startswith("call_")  # minted when missing


def test_a_call_without_a_name_is_unreadable():
    """parse_reply raises ValueError, which `complete()` turns into MalformedReply."""
    wire = {"id": "x", "function": {"arguments": "{}"}}
    with pytest.raises(ValueError, match="no function name"):
        adapter(LLMProvider.OPENAI).parse_reply(reply(completion({"tool_calls": [wire]})))


def test_json_object_without_the_word_json_is_refused_before_openai_400s():
    from core.errors import BadRequest
    from schemas.job import ChatMessage

    silent = (ChatMessage(role="user", content="Give me a person."),)
    with pytest.raises(BadRequest, match="word 'json'"):
        adapter(LLMProvider.OPENAI).build_request(req(silent, response_format=AS_OBJECT))
    ok = req(silent, response_format=AS_OBJECT)
    assert built(adapter(LLMProvider.HUGGINGFACE), ok)["response_format"] == {"type": "json_object"}
    system_says = dataclasses.replace(ok, system="Answer in JSON.")
    assert (
        built(adapter(LLMProvider.OPENAI), system_says)["response_format"]["type"] == "json_object"
    )
