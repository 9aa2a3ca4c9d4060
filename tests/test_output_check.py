"""`check_output` as a table: (features asked, reply) -> parsed value, or `InvalidOutput` and why.
Pure: no provider, no I/O (workers/output_check.py)."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidOutput, MalformedReply
from schemas.job import ErrorKind, Usage
from schemas.request import Features, ToolCall
from workers.output_check import check_output
from workers.providers.base import ProviderReply

SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["bug", "feature"]}, "n": {"type": "integer"}},
    "required": ["label"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
}  # fmt: skip
FREE_TOOL = {"type": "function", "function": {"name": "ping"}}
PLAIN = Features()
OBJ = Features.model_validate({"response_format": {"type": "json_object"}})
SCH = Features.model_validate({"response_format": {"type": "json_schema", "json_schema": {"name": "triage", "schema": SCHEMA}}})  # fmt: skip
TOOLS = Features.model_validate({"tools": [TOOL, FREE_TOOL]})
SCH_TOOLS = Features.model_validate({**SCH.model_dump(by_alias=True), "tools": [TOOL]})


def reply(
    text: str = "", calls: tuple[tuple[str, str], ...] = (), refusal: str | None = None
) -> ProviderReply:
    tool_calls = tuple(ToolCall(id=f"c{i}", name=n, arguments=a) for i, (n, a) in enumerate(calls))
    return ProviderReply(
        text, "stop", Usage(prompt_tokens=1, completion_tokens=1), tool_calls, refusal
    )


# (case, features, reply, parsed value)
VALID: list[tuple[str, Features, ProviderReply, Any]] = [
    ("plain text", PLAIN, reply("hello"), None),
    ("plain, JSON-looking text", PLAIN, reply("{not json"), None),
    ("json_object", OBJ, reply('{"a": 1}'), {"a": 1}),
    ("json_object, whitespace around", OBJ, reply(' \n{"a": [1, 2]}\n'), {"a": [1, 2]}),
    ("json_schema", SCH, reply('{"label": "bug", "n": 3}'), {"label": "bug", "n": 3}),
    ("refusal is not checked", SCH, reply("I can't help", refusal="I can't help"), None),
    ("tool call with valid arguments", TOOLS, reply(calls=(("lookup", '{"q": "x"}'),)), None),
    ("tool without parameters, empty arguments", TOOLS, reply(calls=(("ping", ""),)), None),
    ("JSON + tools: a tool call is the answer", SCH_TOOLS, reply("", calls=(("lookup", '{"q": "y"}'),)), None),
    ("JSON + tools: JSON text answer", SCH_TOOLS, reply('{"label": "feature"}'), {"label": "feature"}),
]  # fmt: skip

# (case, features, reply, fragment of the reason)
INVALID: list[tuple[str, Features, ProviderReply, str]] = [
    ("not JSON", OBJ, reply("Sure! Here it is"), "the reply is not valid JSON"),
    ("empty text", OBJ, reply(""), "the reply is not valid JSON"),
    ("truncated", SCH, reply('{"label": "bu'), "the reply is not valid JSON"),
    ("NaN", OBJ, reply('{"a": NaN}'), "NaN is not a valid JSON number"),
    ("two values", OBJ, reply('{"a": 1} {"b": 2}'), "the reply is not valid JSON"),
    ("json_object but an array", OBJ, reply("[1, 2]"), "json_object asked, the reply is a JSON array"),
    ("schema: wrong enum", SCH, reply('{"label": "question"}'), "does not match the schema 'triage': 'question' is not one of"),
    ("schema: missing required", SCH, reply('{"n": 1}'), "'label' is a required property"),
    ("schema: extra property", SCH, reply('{"label": "bug", "x": 1}'), "Additional properties are not allowed"),
    ("schema: wrong type, with path", SCH, reply('{"label": "bug", "n": "3"}'), "(at /n)"),
    ("tool undeclared", TOOLS, reply(calls=(("drop_table", "{}"),)), "'drop_table' is not a declared tool (declared: lookup, ping)"),
    ("tool arguments not JSON", TOOLS, reply(calls=(("lookup", '{"q": '),)), "tool call c0 (lookup): arguments are not JSON"),
    ("tool arguments an array", TOOLS, reply(calls=(("lookup", "[1]"),)), "arguments are a JSON array, not an object"),
    ("tool arguments miss a parameter", TOOLS, reply(calls=(("lookup", "{}"),)), "arguments do not match its parameters: 'q' is a required property"),
    ("tool call without tools offered", PLAIN, reply(calls=(("lookup", "{}"),)), "(declared: none)"),
    ("JSON + tools: bad JSON text", SCH_TOOLS, reply("nope"), "the reply is not valid JSON"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("features", "r", "parsed"), [c[1:] for c in VALID], ids=[c[0] for c in VALID]
)
def test_valid(features: Features, r: ProviderReply, parsed: Any) -> None:
    assert check_output(features, r) == parsed


@pytest.mark.parametrize(
    ("features", "r", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid(features: Features, r: ProviderReply, fragment: str) -> None:
    with pytest.raises(InvalidOutput) as caught:
        check_output(features, r)
    err = caught.value
    assert fragment in str(err)
    assert err.raw == r.text and err.kind == ErrorKind.INVALID_OUTPUT
    # retried like an unparseable body: elsewhere when possible (retry.decide, by class)
    assert isinstance(err, MalformedReply)
