"""The OpenAI chat request surface at input (issue 15): every accepted shape, in both line
formats, becomes the right JobSpec; every bad shape is ``line N: field: reason``. Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from request_cases import (
    CALL,
    GIF_URL,
    JPEG_URL,
    PNG_URL,
    SCHEMA,
    TOOL,
    TOOL2,
    USER,
    WEBP_URL,
    both_formats,
)

from core.jsonl import InputError, parse_lines
from schemas.config import LLMConfig
from schemas.job import ChatMessage, JobSpec
from schemas.request import (
    NO_FEATURES,
    Features,
    ImagePart,
    ImageUrl,
    JsonSchemaFormat,
    NamedToolChoice,
    ResponseFormat,
    Sampling,
    TextPart,
    ToolCall,
    ToolSpec,
)

CFG = LLMConfig.model_validate({"models": [{"name": "m", "provider": "openai"}]})
WEATHER = ToolSpec.model_validate(TOOL)
TIME = ToolSpec.model_validate(TOOL2)
PLAIN_USER = [ChatMessage(role="user", content=USER["content"])]


def parse(*lines: str) -> list[JobSpec]:
    return parse_lines(enumerate(lines, 1), CFG)


def reasons(*lines: str) -> list[str]:
    with pytest.raises(InputError) as info:
        parse(*lines)
    return info.value.errors


# (id, request fields, expected features, expected messages or None = PLAIN_USER)
ACCEPTED: list[tuple[str, dict[str, Any], Features, list[ChatMessage] | None]] = [
    (
        "json_object",
        {"response_format": {"type": "json_object"}},
        Features(response_format=ResponseFormat(type="json_object")),
        None,
    ),
    (
        "json_schema",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "invoice",
                    "description": "An invoice",
                    "schema": SCHEMA,
                    "strict": True,
                },
            }
        },
        Features(
            response_format=ResponseFormat(
                type="json_schema",
                json_schema=JsonSchemaFormat(
                    name="invoice", description="An invoice", json_schema=SCHEMA, strict=True
                ),
            )
        ),
        None,
    ),
    ("text is the default", {"response_format": {"type": "text"}}, NO_FEATURES, None),
    ("tools alone", {"tools": [TOOL]}, Features(tools=(WEATHER,)), None),
    *[
        (
            f"tool_choice {choice}",
            {"tools": [TOOL, TOOL2], "tool_choice": choice, "parallel_tool_calls": False},
            Features(tools=(WEATHER, TIME), tool_choice=choice, parallel_tool_calls=False),
            None,
        )
        for choice in ("auto", "none", "required")
    ],
    (
        "tool_choice named",
        {
            "tools": [TOOL, TOOL2],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        },
        Features(tools=(WEATHER, TIME), tool_choice=NamedToolChoice(name="get_time")),
        None,
    ),
    (
        "tools and json",
        {"tools": [TOOL2], "response_format": {"type": "json_object"}},
        Features(tools=(TIME,), response_format=ResponseFormat(type="json_object")),
        None,
    ),
    ("stop string", {"stop": "END"}, Features(sampling=Sampling(stop=("END",))), None),
    (
        "stop list of 4",
        {"stop": ["a", "b", "\n\n", "d"]},
        Features(sampling=Sampling(stop=("a", "b", "\n\n", "d"))),
        None,
    ),
    ("stop empty list", {"stop": []}, NO_FEATURES, None),
    (
        "sampling",
        {
            "top_p": 0.5,
            "seed": -7,
            "presence_penalty": -2,
            "frequency_penalty": 2,
            "user": "u-1",
        },
        Features(
            sampling=Sampling(
                top_p=0.5, seed=-7, presence_penalty=-2.0, frequency_penalty=2.0, user="u-1"
            )
        ),
        None,
    ),
    ("top_p edges", {"top_p": 0}, Features(sampling=Sampling(top_p=0.0)), None),
    (
        "nulls are absent",
        {"stop": None, "seed": None, "tools": None, "tool_choice": None, "response_format": None},
        NO_FEATURES,
        None,
    ),
    *[
        (
            f"image {name}",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
                        ],
                    }
                ]
            },
            NO_FEATURES,
            [
                ChatMessage(
                    role="user",
                    content=(
                        TextPart(text="What is this?"),
                        ImagePart(image_url=ImageUrl(url=url, detail="low")),
                    ),
                )
            ],
        )
        for name, url in [
            ("https", "https://example.com/cat.png?size=2"),
            ("png", PNG_URL),
            ("jpeg", JPEG_URL),
            ("gif", GIF_URL),
            ("webp", WEBP_URL),
        ]
    ],
    (
        "image only, no detail",
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}
            ]
        },
        NO_FEATURES,
        [ChatMessage(role="user", content=(ImagePart(image_url=ImageUrl(url=PNG_URL)),))],
    ),
    (
        "text parts are joined",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                }
            ]
        },
        NO_FEATURES,
        [ChatMessage(role="user", content="a\nb")],
    ),
    (
        "tool history",
        {
            "tools": [TOOL],
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "12 C, rain"},
                {"role": "user", "content": "And tomorrow?"},
            ],
        },
        Features(tools=(WEATHER,)),
        [
            PLAIN_USER[0],
            ChatMessage(
                role="assistant",
                content=None,
                tool_calls=(
                    ToolCall(id="call_1", name="get_weather", arguments='{"city": "Oslo"}'),
                ),
            ),
            ChatMessage(role="tool", tool_call_id="call_1", content="12 C, rain"),
            ChatMessage(role="user", content="And tomorrow?"),
        ],
    ),
    (
        "two calls, content kept, answered in any order, text parts in a tool result",
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        CALL,
                        {
                            **CALL,
                            "id": "call_2",
                            "function": {"name": "get_time", "arguments": "{}"},
                        },
                    ],
                },
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "noon"}],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
        },
        NO_FEATURES,
        [
            PLAIN_USER[0],
            ChatMessage(
                role="assistant",
                content="Checking.",
                tool_calls=(
                    ToolCall(id="call_1", name="get_weather", arguments='{"city": "Oslo"}'),
                    ToolCall(id="call_2", name="get_time", arguments="{}"),
                ),
            ),
            ChatMessage(role="tool", tool_call_id="call_2", content="noon"),
            ChatMessage(role="tool", tool_call_id="call_1", content="sunny"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("fields", "features", "messages"),
    [c[1:] for c in ACCEPTED],
    ids=[c[0] for c in ACCEPTED],
)
def test_accepted_shapes_round_trip_in_both_formats(
    fields: dict[str, Any], features: Features, messages: list[ChatMessage] | None
) -> None:
    fields = {"messages": [USER], **fields}
    native, openai = parse(*both_formats("c", fields))
    for spec in (native, openai):
        assert spec.features == features
        assert spec.messages == (messages or PLAIN_USER)
        assert spec.model == "m"
        # what is stored is what comes back
        assert JobSpec(**spec.model_dump(mode="json")) == spec
    assert native.model_dump(exclude={"custom_id"}) == openai.model_dump(exclude={"custom_id"})


def test_max_completion_tokens_in_both_formats() -> None:
    native, openai = parse(*both_formats("c", {"messages": [USER], "max_completion_tokens": 77}))
    assert native.max_tokens == openai.max_tokens == 77


def test_the_cookbook_openai_batch_line_is_accepted() -> None:
    """The common OpenAI cookbook shape that issue 15 reports as rejected."""
    line = {
        "custom_id": "task-0",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "m",
            "temperature": 0.1,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": "Categorize the movie. Reply in JSON."},
                {"role": "user", "content": "Inception: a thief who steals secrets..."},
            ],
        },
    }
    [spec] = parse(json.dumps(line))
    assert spec.features.response_format == ResponseFormat(type="json_object")
    assert spec.features.wants_json and spec.system == "Categorize the movie. Reply in JSON."


BIG_SCHEMA_OK = {
    "type": "object",
    "$defs": {"a": {"type": "string"}},
    "properties": {"x": {"$ref": "#/$defs/a"}},
}


def rf_schema(schema: Any, **extra: Any) -> dict[str, Any]:
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "s", "schema": schema, **extra},
        }
    }


def msgs(*messages: Any) -> dict[str, Any]:
    return {"messages": list(messages)}


def image(url: Any, **extra: Any) -> dict[str, Any]:
    part = {"type": "image_url", "image_url": {"url": url, **extra}}
    return msgs({"role": "user", "content": [{"type": "text", "text": "hi"}, part]})


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


def test_each_distinct_schema_is_checked_once_per_file() -> None:
    lines = [
        json.dumps({"custom_id": f"c{i}", "prompt": "p", **rf_schema(BIG_SCHEMA_OK)})
        for i in range(200)
    ]
    assert len(parse(*lines)) == 200  # 200 metaschema checks would take about a second


def test_stored_spec_of_a_plain_job_keeps_its_old_shape() -> None:
    [spec] = parse(json.dumps({"custom_id": "p", "prompt": "hi", "max_tokens": 5}))
    assert spec.model_dump(mode="json", exclude={"custom_id", "model"}) == {
        "messages": [{"role": "user", "content": "hi"}],
        "system": None,
        "max_tokens": 5,
        "temperature": None,
        "metadata": {},
        "cache": True,
    }
    assert json.loads(spec.model_dump_json(exclude={"custom_id", "model"})) == spec.model_dump(
        mode="json", exclude={"custom_id", "model"}
    )


def test_stored_spec_with_features_is_compact_and_round_trips() -> None:
    fields = {
        "messages": [
            USER,
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        **rf_schema(SCHEMA),
        "stop": "END",
    }
    [spec] = parse(both_formats("f", fields)[1])
    stored = json.loads(spec.model_dump_json(exclude={"custom_id", "model"}))
    assert stored["features"] == {
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA}},
        "tools": [TOOL],
        "tool_choice": {"name": "get_weather"},
        "sampling": {"stop": ["END"]},
    }
    assert stored["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}],
    }
    assert JobSpec(**stored, custom_id="f-o", model="m") == spec
    # and the OpenAI form of the request is what came in
    assert spec.features.openai_params() == {k: v for k, v in fields.items() if k != "messages"} | {
        "stop": ["END"]
    }
    assert [m.openai() for m in spec.messages][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [CALL],
    }
