"""The OpenAI chat request surface at input (issue 15): every accepted shape, in both line
formats, becomes the right JobSpec, and is stored compactly (a plain job exactly as before).
Pure. The rejected shapes are in test_producer_request_rejected.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from request_cases import (
    BIG_SCHEMA_OK,
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
    rf_schema,
)

from core.jsonl import parse_lines
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
