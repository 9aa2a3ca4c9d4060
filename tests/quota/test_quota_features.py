"""workers.quota.prompt_token_bound with the request surface of issue 15 (parts, images, tool
calls and results, tool definitions, JSON schemas): table-driven, hand-computed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.config import QuotaSettings
from schemas.job import ChatMessage
from schemas.request import NO_FEATURES, Features
from workers.quota import JSON_OVERHEAD, TOOLS_OVERHEAD, prompt_token_bound

PNG = "data:image/png;base64,iVBORw0KGgo="
IMG = {"type": "image_url", "image_url": {"url": PNG}}
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}


def msg(**raw: Any) -> ChatMessage:
    return ChatMessage.model_validate(raw)


def feats(**raw: Any) -> Features:
    return Features.model_validate(raw)


CALLING = msg(role="assistant", content=None, tool_calls=[CALL])
ANSWER = msg(role="tool", content="ok", tool_call_id="c1")

# (case, messages, features, expected) with allowance 8 and image_bound 100
CASES: list[tuple[str, list[ChatMessage], Features, int]] = [
    (
        "text parts: bytes + allowance per part",
        [msg(role="user", content=[{"type": "text", "text": "ab"}, {"type": "text", "text": "c"}])],
        NO_FEATURES,
        4 + 8 + 8,
    ),  # fmt: skip
    # "ab" (2) + 8, the image 100, the second part's framing 8
    (
        "an image costs image_bound",
        [msg(role="user", content=[{"type": "text", "text": "ab"}, IMG])],
        NO_FEATURES,
        2 + 8 + 100 + 8,
    ),  # fmt: skip
    ("two images", [msg(role="user", content=[IMG, IMG])], NO_FEATURES, 0 + 8 + 200 + 8),
    # None content (0) + 8; the call: id 2 + name 1 + max('{"a":1}' 7, '{"a": 1}' 8) + 8; preamble
    (
        "a tool call with None content",
        [CALLING],
        NO_FEATURES,
        8 + 2 + 1 + 8 + 8 + TOOLS_OVERHEAD,
    ),  # fmt: skip
    # + the result: "ok" 2 + 8, re-rendered as {"result": "ok"} (16, i.e. 14 more), id 2, name 1, 8
    (
        "a tool result",
        [CALLING, ANSWER],
        NO_FEATURES,
        27 + 2 + 8 + 14 + 2 + 1 + 8 + TOOLS_OVERHEAD,
    ),  # fmt: skip
    # the tool's JSON (47 bytes) + 8, and the preamble
    (
        "tool definitions",
        [msg(role="user", content="")],
        feats(tools=[{"type": "function", "function": {"name": "f"}}]),
        8 + 47 + 8 + TOOLS_OVERHEAD,
    ),  # fmt: skip
    # response_format's JSON (83 bytes) + 8, and the JSON overhead
    (
        "a json_schema",
        [msg(role="user", content="")],
        feats(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "n", "schema": {"type": "object"}},
            }
        ),
        8 + 83 + 8 + JSON_OVERHEAD,
    ),  # fmt: skip
    (
        "text format adds nothing",
        [msg(role="user", content="")],
        feats(response_format={"type": "text"}),
        8,
    ),  # fmt: skip
    (
        "sampling adds nothing",
        [msg(role="user", content="hi")],
        feats(sampling={"stop": "x", "seed": 1, "top_p": 0.5}),
        2 + 8,
    ),  # fmt: skip
]


@pytest.mark.parametrize(
    ("messages", "features", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bound_table(messages: list[ChatMessage], features: Features, expected: int) -> None:
    assert prompt_token_bound(messages, None, 8, features, image_bound=100) == expected


def test_escapes_count_where_an_adapter_re_renders_json() -> None:
    """Arguments with non-ASCII text: the escaped rendering (\\u00e9, 6 bytes) is counted."""
    args = json.dumps({"city": "é" * 10}, ensure_ascii=False)
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}
    bound = prompt_token_bound([msg(role="assistant", content=None, tool_calls=[call])], None, 0)
    assert bound == 1 + 1 + len(json.dumps({"city": "é" * 10})) + TOOLS_OVERHEAD
    assert len(json.dumps({"city": "é" * 10})) > len(args.encode())


def test_default_image_bound_covers_gpt_4o_mini_high_detail() -> None:
    """2833 base + 5667 per tile, at most 8 tiles (2048x768 after scaling)."""
    assert QuotaSettings().image_token_bound >= 2833 + 8 * 5667
    one_image = [msg(role="user", content=[IMG])]
    assert prompt_token_bound(one_image, None, 0) == QuotaSettings().image_token_bound


@pytest.mark.parametrize(
    "extra",
    [
        {
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
            ]
        },  # fmt: skip
        {"response_format": {"type": "json_object"}},
    ],
)
def test_a_feature_never_lowers_the_bound(extra: dict[str, Any]) -> None:
    messages = [msg(role="user", content="hello")]
    assert prompt_token_bound(messages, "sys", 8, feats(**extra)) > prompt_token_bound(
        messages, "sys", 8
    )
