"""workers.output.check_output as a table: (features, reply) -> Valid(parsed) | Invalid(kind)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.request import Features, ToolCall
from workers.output import Invalid, Valid, check_output

SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
    "required": ["total", "currency"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
FREE = {"type": "function", "function": {"name": "anything"}}  # no parameters declared


def feats(**raw: Any) -> Features:
    return Features.model_validate(raw)


JSON_OBJECT = feats(response_format={"type": "json_object"})
JSON_SCHEMA = feats(
    response_format={"type": "json_schema", "json_schema": {"name": "invoice", "schema": SCHEMA}}
)
TOOLS = feats(tools=[WEATHER, FREE])
REQUIRED = feats(tools=[WEATHER, FREE], tool_choice="required")
NAMED = feats(tools=[WEATHER, FREE], tool_choice={"type": "function", "function": {"name": "get_weather"}})  # fmt: skip
NONE = feats(tools=[WEATHER], tool_choice="none")
JSON_AND_TOOLS = feats(
    tools=[WEATHER],
    response_format={"type": "json_schema", "json_schema": {"name": "invoice", "schema": SCHEMA}},
)


def call(name: str = "get_weather", arguments: str = '{"city": "Oslo"}') -> ToolCall:
    return ToolCall(id="call_1", name=name, arguments=arguments)


VALID: list[tuple[str, Features, str, tuple[ToolCall, ...], Any]] = [
    ("plain text", Features(), "hello", (), None),
    ("plain empty text stays as before", Features(), "", (), None),
    ("json_object", JSON_OBJECT, '{"a": 1}', (), {"a": 1}),
    ("json_object in a code fence", JSON_OBJECT, '```json\n{"a": 1}\n```', (), {"a": 1}),
    (
        "json_schema",
        JSON_SCHEMA,
        '{"total": 9.5, "currency": "EUR"}',
        (),
        {"total": 9.5, "currency": "EUR"},
    ),  # fmt: skip
    ("auto tools, text answer", TOOLS, "no tool needed", (), None),
    ("auto tools, a call", TOOLS, "", (call(),), None),
    ("required, a call", REQUIRED, "", (call(),), None),
    ("named, that call", NAMED, "", (call(),), None),
    ("tool without parameters: any object", TOOLS, "", (call("anything", '{"x": [1]}'),), None),
    ("empty arguments object", TOOLS, "", (call("anything", "{}"),), None),
    ("json + tools: a tool-call turn with no text", JSON_AND_TOOLS, "", (call(),), None),
    (
        "json + tools: text answer",
        JSON_AND_TOOLS,
        '{"total": 1, "currency": "X"}',
        (),
        {"total": 1, "currency": "X"},
    ),  # fmt: skip
]


@pytest.mark.parametrize(
    ("features", "text", "calls", "parsed"),
    [v[1:] for v in VALID],
    ids=[v[0] for v in VALID],
)
def test_valid(features: Features, text: str, calls: tuple[ToolCall, ...], parsed: Any) -> None:
    assert check_output(features, text, calls, None) == Valid(parsed)


INVALID: list[tuple[str, Features, str, tuple[ToolCall, ...], str]] = [
    ("not JSON", JSON_OBJECT, "Sure! Here it is", (), "not JSON"),
    ("empty JSON reply", JSON_OBJECT, "  ", (), "empty"),
    ("truncated JSON", JSON_OBJECT, '{"a": ', (), "not JSON"),
    ("NaN is not JSON", JSON_OBJECT, '{"a": NaN}', (), "not JSON"),
    ("json_object wants an object", JSON_OBJECT, "[1, 2]", (), "an array"),
    (
        "schema: missing property",
        JSON_SCHEMA,
        '{"total": 1}',
        (),
        "'currency' is a required property",
    ),  # fmt: skip
    ("schema: wrong type", JSON_SCHEMA, '{"total": "1", "currency": "EUR"}', (), "at /total"),
    (
        "schema: extra property",
        JSON_SCHEMA,
        '{"total": 1, "currency": "E", "x": 0}',
        (),
        "Additional properties",
    ),  # fmt: skip
    ("required, no call", REQUIRED, "I would rather talk", (), "tool_choice required"),
    ("named, no call", NAMED, "hi", (), "tool_choice named"),
    ("named, another tool", NAMED, "", (call("anything", "{}"),), "but tool_choice named"),
    ("none, but a call", NONE, "", (call(),), "tool_choice none"),
    (
        "a tool not offered",
        TOOLS,
        "",
        (call("delete_all", "{}"),),
        "not a tool the request offered",
    ),  # fmt: skip
    ("calls without tools", Features(), "", (call(),), "not a tool the request offered"),
    ("arguments not JSON", TOOLS, "", (call(arguments="{city: Oslo}"),), "arguments are not JSON"),
    ("arguments an array", TOOLS, "", (call("anything", "[1]"),), "not an object"),
    (
        "arguments miss a required field",
        TOOLS,
        "",
        (call(arguments='{"town": "Oslo"}'),),
        "'city' is a required property",
    ),  # fmt: skip
    ("json + tools: invalid text with a call", JSON_AND_TOOLS, "oops", (call(),), "not JSON"),
]


@pytest.mark.parametrize(
    ("features", "text", "calls", "reason"),
    [v[1:] for v in INVALID],
    ids=[v[0] for v in INVALID],
)
def test_invalid_output(
    features: Features, text: str, calls: tuple[ToolCall, ...], reason: str
) -> None:
    verdict = check_output(features, text, calls, None)
    assert isinstance(verdict, Invalid)
    assert verdict.kind == "invalid_output"
    assert reason in verdict.reason


@pytest.mark.parametrize("features", [Features(), JSON_SCHEMA, REQUIRED])
def test_a_refusal_is_reported_as_a_refusal_not_as_invalid_json(features: Features) -> None:
    verdict = check_output(features, "", (), "I can't help with that.")
    assert verdict == Invalid("refused", "the model refused: I can't help with that.")


def test_a_reply_cut_at_max_tokens_says_so() -> None:
    verdict = check_output(JSON_OBJECT, '{"a": "lon', (), None, "length")
    assert isinstance(verdict, Invalid)
    assert verdict.reason.endswith("(the reply was cut at max_tokens)")


def test_long_reasons_are_clipped() -> None:
    verdict = check_output(JSON_OBJECT, "x" * 5000, (), None)
    assert isinstance(verdict, Invalid) and len(verdict.reason) < 400
