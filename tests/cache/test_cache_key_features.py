"""The cache key covers the request surface of issue 15 (core/cache_key.py): two requests that
differ in any content part, tool call, tool-call id, output format, schema, tool, tool choice or
sampling parameter never share an entry; plain-text requests keep the key they always had."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.cache_key import KEY_VERSION, cache_key, key_for
from core.jsonl import parse_lines
from schemas.config import LLMConfig
from schemas.job import ChatMessage, JobSpec
from schemas.request import NO_FEATURES, Features

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgG"
    "AWjR9awAAAABJRU5ErkJggg=="
)
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
TOOL_G = {"type": "function", "function": {"name": "g", "description": "G"}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
CONFIG = LLMConfig.model_validate(
    {"models": [{"name": "m", "provider": "openai", "temperature": 0}], "cache": {"enabled": True}}
)

# Every field of the request surface is set, so each change below alters exactly one thing.
BASE: dict[str, Any] = {
    "custom_id": "c",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "result"},
    ],
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "s", "schema": SCHEMA, "strict": True},
    },
    "tools": [TOOL, TOOL_G],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "stop": ["END"],
    "top_p": 0.9,
    "seed": 1,
    "presence_penalty": 0.5,
    "frequency_penalty": 0.5,
    "user": "u1",
}


def spec_of(line: dict[str, Any]) -> JobSpec:
    [spec] = parse_lines([(1, json.dumps(line))], CONFIG)
    return spec


def key(**change: Any) -> str | None:
    line = {**BASE, **change}
    return key_for(spec_of({k: v for k, v in line.items() if v is not None}), CONFIG)


def with_message(i: int, message: dict[str, Any]) -> list[dict[str, Any]]:
    out = list(BASE["messages"])
    out[i] = message
    return out


def calls(**change: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [{**CALL, **change}]}


CHANGES: list[tuple[str, dict[str, Any]]] = [
    (
        "image detail",
        {
            "messages": with_message(
                0,
                {
                    **BASE["messages"][0],
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
                    ],
                },
            )
        },
    ),
    (
        "image url",
        {
            "messages": with_message(
                0,
                {
                    **BASE["messages"][0],
                    "content": [
                        {"type": "text", "text": "look"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://example.com/a.png", "detail": "low"},
                        },
                    ],
                },
            )
        },
    ),
    ("image dropped", {"messages": with_message(0, {"role": "user", "content": "look"})}),
    (
        "part order",
        {
            "messages": with_message(
                0,
                {
                    **BASE["messages"][0],
                    "content": [
                        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                        {"type": "text", "text": "look"},
                    ],
                },
            )
        },
    ),
    (
        "tool call arguments",
        {"messages": with_message(1, calls(function={"name": "f", "arguments": '{"x": 2}'}))},
    ),
    (
        "tool call name",
        {"messages": with_message(1, calls(function={"name": "g", "arguments": '{"x": 1}'}))},
    ),
    ("tool call content", {"messages": with_message(1, {**calls(), "content": "thinking"})}),
    (
        "tool call ids",
        {
            "messages": [
                BASE["messages"][0],
                calls(id="call_2"),
                {**BASE["messages"][2], "tool_call_id": "call_2"},
            ]
        },
    ),
    ("tool result", {"messages": with_message(2, {**BASE["messages"][2], "content": "other"})}),
    ("json_object", {"response_format": {"type": "json_object"}}),
    ("no response_format", {"response_format": None}),
    (
        "schema",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": {**SCHEMA, "required": []}, "strict": True},
            }
        },
    ),
    (
        "schema key order",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "s",
                    "schema": dict(reversed(list(SCHEMA.items()))),
                    "strict": True,
                },
            }
        },
    ),
    (
        "schema name",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "t", "schema": SCHEMA, "strict": True},
            }
        },
    ),
    (
        "schema strict",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": SCHEMA, "strict": False},
            }
        },
    ),
    (
        "schema description",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": SCHEMA, "strict": True, "description": "d"},
            }
        },
    ),
    (
        "tool description",
        {"tools": [TOOL, {**TOOL_G, "function": {"name": "g", "description": "H"}}]},
    ),
    (
        "tool parameters",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}, TOOL_G]},
    ),
    ("tool order", {"tools": [TOOL_G, TOOL]}),
    ("tool removed", {"tools": [TOOL]}),
    ("tool_choice required", {"tool_choice": "required"}),
    ("tool_choice none", {"tool_choice": "none"}),
    ("tool_choice named", {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
    ("tool_choice unset", {"tool_choice": None}),
    ("parallel false", {"parallel_tool_calls": False}),
    ("parallel unset", {"parallel_tool_calls": None}),
    ("stop", {"stop": ["STOP"]}),
    ("stop added", {"stop": ["END", "STOP"]}),
    ("top_p", {"top_p": 0.8}),
    ("seed", {"seed": 2}),
    ("presence_penalty", {"presence_penalty": 0.0}),
    ("frequency_penalty", {"frequency_penalty": 0.0}),
    ("user", {"user": "u2"}),
    ("user unset", {"user": None}),
]


def test_the_base_request_is_cacheable_and_stable() -> None:
    assert key() is not None and key() == key()


@pytest.mark.parametrize("change", [c for _, c in CHANGES], ids=[n for n, _ in CHANGES])
def test_every_part_of_the_request_surface_changes_the_key(change: dict[str, Any]) -> None:
    assert key(**change) != key()


def test_all_changed_keys_are_distinct() -> None:
    keys = [key(**change) for _, change in CHANGES]
    assert len(set(keys)) == len(keys)


# (id, line A, line B): the same request spelled twice, so one key
SAME: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("stop string or list", {"stop": "END"}, {"stop": ["END"]}),
    ("explicit nulls", {"seed": None, "tools": None, "user": None}, {}),
    ("response_format text is the default", {"response_format": {"type": "text"}}, {}),
    ("penalty 1 or 1.0", {"presence_penalty": 1}, {"presence_penalty": 1.0}),
    (
        "named choice",
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "f"}}},
        {"tools": [TOOL], "tool_choice": {"function": {"name": "f"}, "type": "function"}},
    ),
]


@pytest.mark.parametrize(("a", "b"), [c[1:] for c in SAME], ids=[c[0] for c in SAME])
def test_equivalent_spellings_share_a_key(a: dict[str, Any], b: dict[str, Any]) -> None:
    def k(extra: dict[str, Any]) -> str | None:
        return key_for(spec_of({"custom_id": "c", "prompt": "hi", **extra}), CONFIG)

    assert k(a) == k(b) is not None


# Keys computed by core/cache_key.py before issue 15 (commit e551b58): existing cache entries
# must keep matching, so these must never change without a KEY_VERSION bump.
PLAIN = [
    ChatMessage(role="user", content="Summarise: ünïcode ✓"),
    ChatMessage(role="assistant", content="ok"),
    ChatMessage(role="user", content="more"),
]
GOLDEN = [
    (
        ("gpt-4o-mini", PLAIN, "be brief", 0, 256),
        "84a28ae31b3d9ef55a6dc1eae58ebb0c014c0709d043563c2b74f3331a5174d3",
    ),
    (
        ("m", PLAIN[:1], None, 0.0, None),
        "c6f2b733e8147e6035e6047fe226e1a0bc8f84c8a806d3c6ffbc3d69539472ad",
    ),
]


@pytest.mark.parametrize(("args", "expected"), GOLDEN)
def test_plain_text_requests_keep_their_key(args: tuple[Any, ...], expected: str) -> None:
    assert KEY_VERSION == 1
    assert cache_key(*args) == expected
    assert cache_key(*args, features=None) == expected
    assert cache_key(*args, features=NO_FEATURES) == expected
    assert cache_key(*args, features=Features()) == expected


def test_a_plain_spec_from_either_format_keeps_its_key() -> None:
    native = spec_of({"custom_id": "a", "model": "m", "prompt": "Summarise: ünïcode ✓"})
    openai = spec_of(
        {
            "custom_id": "b",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "m",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Summarise: ünïcode ✓"}]}
                ],
            },
        }
    )
    expected = cache_key("m", PLAIN[:1], None, 0.0, 1024)  # 1024: the deployment's max_tokens
    assert key_for(native, CONFIG) == key_for(openai, CONFIG) == expected


def test_text_content_and_a_single_text_part_are_one_request() -> None:
    """Text-only parts are joined at input, so they key like the plain string."""
    a = spec_of({"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]})
    b = spec_of(
        {
            "custom_id": "b",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        }
    )
    assert key_for(a, CONFIG) == key_for(b, CONFIG)
