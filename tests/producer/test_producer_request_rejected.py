"""The OpenAI chat request surface at input (issue 15): every bad shape, in both line formats,
is ``line N: field: reason`` with the exact field path. Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from request_cases import (
    CALL,
    JPEG_URL,
    PNG_URL,
    SCHEMA,
    TOOL,
    TOOL2,
    USER,
    both_formats,
    image,
    msgs,
    rf_schema,
)

from core.jsonl import InputError, parse_lines
from schemas.config import LLMConfig

CFG = LLMConfig.model_validate({"models": [{"name": "m", "provider": "openai"}]})


def reasons(*lines: str) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_lines(enumerate(lines, 1), CFG)
    return info.value.errors


# (id, request fields, the exact reason as an OpenAI Batch line gives it; a native line gives
# it without the "body." prefix)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unsupported body field", {"logprobs": True}, "unsupported field(s): body.logprobs"),
    (
        "rf not object",
        {"response_format": "json"},
        "body.response_format must be an object, got a string",
    ),
    (
        "rf type",
        {"response_format": {"type": "xml"}},
        'body.response_format.type must be one of text, json_object, json_schema, got "xml"',
    ),
    (
        "rf extra field",
        {"response_format": {"type": "json_object", "schema": {}}},
        "unsupported field(s): body.response_format.schema (allowed: type)",
    ),
    (
        "rf json_schema missing",
        {"response_format": {"type": "json_schema"}},
        "body.response_format.json_schema must be an object, got null",
    ),
    (
        "rf schema missing",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "s"}}},
        "body.response_format.json_schema.schema: required (a JSON Schema object)",
    ),
    (
        "rf name bad",
        rf_schema(SCHEMA)
        | {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a b", "schema": SCHEMA},
            }
        },
        "body.response_format.json_schema.name: 'a b' must be 1 to 64 letters, digits, '_' or '-'",
    ),
    (
        "rf schema invalid",
        rf_schema({"type": "object", "properties": {"a": {"type": "strin"}}}),
        "body.response_format.json_schema.schema: not a valid JSON Schema: 'strin' is not valid "
        "under any of the given schemas (at properties/a/type)",
    ),
    (
        "rf schema required not array",
        rf_schema({"type": "object", "required": "a"}),
        "body.response_format.json_schema.schema: not a valid JSON Schema: 'a' is not of type "
        "'array' (at required)",
    ),
    (
        "rf schema not object",
        rf_schema(True),
        "body.response_format.json_schema.schema must be an object, got a boolean",
    ),
    (
        "rf strict not bool",
        rf_schema(SCHEMA, strict="yes"),
        'body.response_format.json_schema.strict must be true or false, got "yes"',
    ),
    (
        "rf json_schema extra",
        rf_schema(SCHEMA, format="x"),
        "unsupported field(s): body.response_format.json_schema.format (allowed: description, "
        "name, schema, strict)",
    ),
    ("tools not array", {"tools": {}}, "body.tools must be an array, got an object"),
    ("tools empty", {"tools": []}, "body.tools must hold 1 to 128 tools, got 0"),
    ("tools too many", {"tools": [TOOL2] * 129}, "body.tools must hold 1 to 128 tools, got 129"),
    (
        "tool type",
        {"tools": [{"type": "web_search"}]},
        'body.tools[0].type: "web_search" is not supported (allowed: function)',
    ),
    (
        "tool name",
        {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
        "body.tools[0].function.name: 'get weather' must be 1 to 64 letters, digits, '_' or '-'",
    ),
    (
        "tool name missing",
        {"tools": [{"type": "function", "function": {}}]},
        "body.tools[0].function.name must be a string, got null",
    ),
    (
        "tool name twice",
        {"tools": [TOOL2, TOOL, TOOL2]},
        "body.tools[2].function.name: 'get_time' is already declared by body.tools[0]",
    ),
    (
        "tool parameters not object type",
        {
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}
            ]
        },
        'body.tools[0].function.parameters must be a JSON Schema with "type": "object"',
    ),
    (
        "tool parameters invalid",
        {
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": {"type": "object", "properties": 3}},
                }
            ]
        },
        "body.tools[0].function.parameters: not a valid JSON Schema: 3 is not of type 'object' "
        "(at properties)",
    ),
    (
        "tool function extra",
        {"tools": [{"type": "function", "function": {"name": "f", "input_schema": {}}}]},
        "unsupported field(s): body.tools[0].function.input_schema (allowed: description, name, "
        "parameters, strict)",
    ),
    (
        "tool_choice without tools",
        {"tool_choice": "auto"},
        "body.tool_choice: given without body.tools",
    ),
    (
        "parallel without tools",
        {"parallel_tool_calls": True},
        "body.parallel_tool_calls: given without body.tools",
    ),
    (
        "tool_choice word",
        {"tools": [TOOL], "tool_choice": "any"},
        'body.tool_choice must be "auto", "none", "required" or {"type": "function", "function": '
        '{"name": ...}}, got "any"',
    ),
    (
        "tool_choice undeclared",
        {"tools": [TOOL, TOOL2], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "body.tool_choice.function.name: 'nope' is not a declared tool (declared: get_weather, get_time)",
    ),
    (
        "tool_choice type",
        {"tools": [TOOL], "tool_choice": {"type": "tool", "function": {"name": "get_weather"}}},
        'body.tool_choice.type must be "function", got "tool"',
    ),
    (
        "parallel not bool",
        {"tools": [TOOL], "parallel_tool_calls": "no"},
        'body.parallel_tool_calls must be true or false, got "no"',
    ),
    ("stop empty", {"stop": ""}, "body.stop must not be empty"),
    ("stop five", {"stop": list("abcde")}, "body.stop may hold at most 4 strings, got 5"),
    ("stop empty item", {"stop": ["a", ""]}, "body.stop[1] must not be empty"),
    ("stop number", {"stop": 3}, "body.stop must be a string or an array of strings, got a number"),
    ("top_p high", {"top_p": 1.5}, "body.top_p must be between 0 and 1, got 1.5"),
    ("top_p text", {"top_p": "0.5"}, 'body.top_p must be a number, got "0.5"'),
    ("seed float", {"seed": 1.5}, "body.seed must be an integer, got 1.5"),
    (
        "seed huge",
        {"seed": 2**63},
        f"body.seed must be between {-(2**63)} and {2**63 - 1}, got {2**63}",
    ),
    (
        "presence",
        {"presence_penalty": -2.5},
        "body.presence_penalty must be between -2 and 2, got -2.5",
    ),
    ("frequency", {"frequency_penalty": True}, "body.frequency_penalty must be a number, got true"),
    ("user", {"user": 5}, "body.user must be a string, got a number"),
    ("user long", {"user": "u" * 257}, "body.user is longer than 256 characters"),
    (
        "http image",
        image("http://example.com/a.png"),
        "body.messages[0].content[1].image_url.url: must be an https:// URL or a data:image/... "
        "URL, got scheme 'http'",
    ),
    (
        "file image",
        image("file:///etc/passwd"),
        "body.messages[0].content[1].image_url.url: must be an https:// URL or a data:image/... "
        "URL, got scheme 'file'",
    ),
    (
        "upper-case scheme",
        image("HTTPS://example.com/a.png"),
        "body.messages[0].content[1].image_url.url: must be an https:// URL or a data:image/... "
        "URL, got 'HTTPS://example.com/'",
    ),
    (
        "relative url",
        image("/img/a.png"),
        "body.messages[0].content[1].image_url.url: must be an https:// URL or a data:image/... "
        "URL, got no scheme",
    ),
    (
        "no host",
        image("https:///a.png"),
        "body.messages[0].content[1].image_url.url: the URL has no host",
    ),
    (
        "bad media type",
        image("data:image/svg+xml;base64,PHN2Zz4="),
        "body.messages[0].content[1].image_url.url: image type 'image/svg+xml' is not supported "
        "(allowed: image/png, image/jpeg, image/gif, image/webp)",
    ),
    (
        "not base64 data url",
        image("data:image/png,rawbytes"),
        "body.messages[0].content[1].image_url.url: a data URL must look like "
        "data:image/<type>;base64,<data>",
    ),
    (
        "bad base64",
        image("data:image/png;base64,iVBOR!!"),
        "body.messages[0].content[1].image_url.url: the data is not valid base64",
    ),
    (
        "empty data",
        image("data:image/png;base64,"),
        "body.messages[0].content[1].image_url.url: the data URL holds no data",
    ),
    (
        "jpeg labelled png",
        image(JPEG_URL.replace("jpeg", "png")),
        "body.messages[0].content[1].image_url.url: the data is not a PNG image (check the media type)",
    ),
    (
        "detail",
        image(PNG_URL, detail="max"),
        'body.messages[0].content[1].image_url.detail must be one of auto, low, high, got "max"',
    ),
    (
        "image_url string",
        msgs({"role": "user", "content": [{"type": "image_url", "image_url": PNG_URL}]}),
        "body.messages[0].content[0].image_url must be an object, got a string",
    ),
    (
        "image in system",
        msgs(
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]},
            USER,
        ),
        "body.messages[0].content[0]: image parts are only allowed in user messages",
    ),
    (
        "audio part",
        msgs({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}),
        'body.messages[0].content[0]: content part "input_audio" is not supported',
    ),
    (
        "tool without id",
        msgs(USER, {"role": "tool", "content": "x"}),
        'body.messages[1].tool_call_id: required for role "tool"',
    ),
    (
        "tool id unknown",
        msgs(USER, {"role": "tool", "tool_call_id": "call_9", "content": "x"}),
        "body.messages[1].tool_call_id: 'call_9' is not the id of an earlier assistant tool call",
    ),
    (
        "tool answered twice",
        msgs(
            USER,
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "x"},
            {"role": "tool", "tool_call_id": "call_1", "content": "y"},
        ),
        "body.messages[3].tool_call_id: tool call 'call_1' is already answered",
    ),
    (
        "call not answered before the next turn",
        msgs(USER, {"role": "assistant", "tool_calls": [CALL]}, USER),
        "body.messages[2]: tool call 'call_1' (body.messages[1].tool_calls[0].id) has no tool "
        "message answering it (tool messages must follow the assistant message that made the calls)",
    ),
    (
        "call never answered",
        msgs(USER, {"role": "assistant", "tool_calls": [CALL]}),
        "body.messages: tool call 'call_1' (body.messages[1].tool_calls[0].id) has no tool "
        "message answering it (tool messages must follow the assistant message that made the calls)",
    ),
    (
        "call id twice",
        msgs(USER, {"role": "assistant", "tool_calls": [CALL, CALL]}),
        "body.messages[1].tool_calls[1].id: tool call id 'call_1' is used twice",
    ),
    (
        "arguments not json",
        msgs(
            USER,
            {
                "role": "assistant",
                "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{city"}}],
            },
        ),
        "body.messages[1].tool_calls[0].function.arguments: not valid JSON: Expecting property "
        "name enclosed in double quotes (column 2)",
    ),
    (
        "arguments an object, not text",
        msgs(
            USER,
            {
                "role": "assistant",
                "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {"a": 1}}}],
            },
        ),
        "body.messages[1].tool_calls[0].function.arguments must be a string, got an object",
    ),
    (
        "arguments a list",
        msgs(
            USER,
            {
                "role": "assistant",
                "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "[1]"}}],
            },
        ),
        "body.messages[1].tool_calls[0].function.arguments must encode a JSON object, got an array",
    ),
    (
        "tool_calls empty",
        msgs(USER, {"role": "assistant", "content": "x", "tool_calls": []}),
        "body.messages[1].tool_calls must be a non-empty array, got an array",
    ),
    (
        "tool_calls on user",
        msgs({**USER, "tool_calls": [CALL]}),
        "body.messages[0].tool_calls: only an assistant message has tool calls",
    ),
    (
        "tool_call_id on assistant",
        msgs(USER, {"role": "assistant", "content": "x", "tool_call_id": "call_1"}),
        "body.messages[1].tool_call_id: only a tool message answers a tool call",
    ),
    (
        "assistant null content without calls",
        msgs(USER, {"role": "assistant", "content": None}),
        "body.messages[1].content must be a string, got null",
    ),
    (
        "call type",
        msgs(USER, {"role": "assistant", "tool_calls": [{**CALL, "type": "custom"}]}),
        'body.messages[1].tool_calls[0].type must be "function", got "custom"',
    ),
    (
        "call extra field",
        msgs(USER, {"role": "assistant", "tool_calls": [{**CALL, "index": 0}]}),
        "unsupported field(s): body.messages[1].tool_calls[0].index (allowed: function, id, type)",
    ),
    (
        "role not a string",
        msgs({"role": ["user"], "content": "x"}),
        'body.messages[0].role ["user"] is not supported',
    ),
    ("role missing", msgs({"content": "x"}), "body.messages[0].role null is not supported"),
    ("message not object", msgs("hello"), "body.messages[0] must be an object, got a string"),
    (
        "user content null",
        msgs({"role": "user", "content": None}),
        "body.messages[0].content must be a string or an array of content parts, got null",
    ),
    (
        "system content number",
        msgs({"role": "system", "content": 3}, USER),
        "body.messages[0].content must be a string, got a number",
    ),
    (
        "text part without text",
        msgs({"role": "user", "content": [{"type": "text"}]}),
        "body.messages[0].content[0].text must be a string",
    ),
    (
        "text part extra",
        msgs({"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {}}]}),
        "unsupported field(s): body.messages[0].content[0].cache_control (allowed: text, type)",
    ),
    (
        "message name field",
        msgs({**USER, "name": "bob"}),
        "unsupported field(s): body.messages[0].name (allowed: content, role, tool_call_id, tool_calls)",
    ),
]


@pytest.mark.parametrize(("fields", "reason"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_shapes_name_the_field_in_both_formats(fields: dict[str, Any], reason: str) -> None:
    fields = {"messages": [USER], **fields}
    good = json.dumps({"custom_id": "good", "prompt": "p"})
    native, openai = both_formats("bad", fields)
    [got] = reasons(good, "", openai)
    assert got.startswith(f"line 3: {reason}"), got
    [got] = reasons(good, native)
    assert got.startswith(f"line 2: {reason.replace('body.', '')}"), got
