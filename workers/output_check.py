"""Structured output, checked: is a reply what the request asked for? (issue 15, Deliver 4)

Owns: `check_output`, a pure function of the request's features and the provider's reply that
returns the parsed JSON value (None when JSON was not asked for, or the reply is a tool call
or a refusal) or raises `InvalidOutput`:

- JSON asked (`json_object` or `json_schema`) and no tool call in the reply: the text must be
  one JSON value (NaN/Infinity refused), an object for `json_object`, and valid against the
  schema (JSON Schema draft 2020-12, the `jsonschema` library) for `json_schema`;
- every tool call must name a declared tool, and its arguments must be a JSON object valid
  against that tool's `parameters` when it declares them;
- a refusal is not checked: it is reported as a refusal, never as invalid JSON.

Must not: do I/O, retry, or decide what an invalid reply leads to (that is `retry.decide`,
by the error's class). Compiled validators are cached per schema text (a schema is checked
once, reused for every reply).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator

from core.errors import InvalidOutput
from schemas.request import Features, ToolCall
from workers.providers.base import ProviderReply

MAX_PROBLEM_CHARS = 300  # of a validation message quoted in the error


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def check_output(features: Features, reply: ProviderReply) -> Any:
    """The reply's parsed JSON value when JSON was asked for, else None; `InvalidOutput`
    (with `raw` = the reply text) when the reply does not fit the request."""
    if reply.refusal is not None:
        return None
    _check_tool_calls(features, reply)
    fmt = features.response_format
    if fmt is None or not fmt.wants_json or reply.tool_calls:
        return None  # a tool call is the answer for now; its arguments were checked above
    try:
        value = _DECODER.decode(reply.text.strip())
    except (ValueError, RecursionError) as exc:
        raise _invalid(reply, f"the reply is not valid JSON ({_short(exc)})") from None
    if fmt.type == "json_object" and not isinstance(value, dict):
        raise _invalid(reply, f"json_object asked, the reply is a JSON {_json_type(value)}")
    schema = fmt.schema_
    if schema is not None:
        problem = _problem(json.dumps(schema, sort_keys=True), value)
        if problem is not None:
            name = fmt.json_schema.name if fmt.json_schema else "schema"
            raise _invalid(reply, f"the reply does not match the schema {name!r}: {problem}")
    return value


def _check_tool_calls(features: Features, reply: ProviderReply) -> None:
    declared = {t.function.name: t.function.parameters for t in features.tools or ()}
    for call in reply.tool_calls:
        if call.name not in declared:
            names = ", ".join(declared) or "none"
            raise _invalid(reply, f"tool call {call.id}: {call.name!r} is not a declared tool "
                           f"(declared: {names})")  # fmt: skip
        args = _arguments(call, reply)
        params = declared[call.name]
        if params is not None:
            problem = _problem(json.dumps(params, sort_keys=True), args)
            if problem is not None:
                raise _invalid(
                    reply, f"tool call {call.id} ({call.name}): arguments do not match its "
                    f"parameters: {problem}",
                )  # fmt: skip


def _arguments(call: ToolCall, reply: ProviderReply) -> dict[str, Any]:
    text = call.arguments.strip() or "{}"
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise _invalid(
            reply, f"tool call {call.id} ({call.name}): arguments are not JSON ({_short(exc)})"
        ) from None
    if not isinstance(value, dict):
        raise _invalid(
            reply,
            f"tool call {call.id} ({call.name}): arguments are a JSON {_json_type(value)}, "
            "not an object",
        )
    return value


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_text))


def _problem(schema_text: str, value: Any) -> str | None:
    """The first validation error of `value` (message and where), None when it is valid."""
    try:
        error = next(iter(_validator(schema_text).iter_errors(value)), None)
    except RecursionError:
        return "nested too deeply to check"
    if error is None:
        return None
    at = "/".join(map(str, error.absolute_path))
    text = _short(error.message)
    return f"{text} (at /{at})" if at else text


def _invalid(reply: ProviderReply, reason: str) -> InvalidOutput:
    return InvalidOutput(reason, raw=reply.text, request_id=reply.request_id)


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_PROBLEM_CHARS else text[:MAX_PROBLEM_CHARS] + "..."


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return names.get(type(value), type(value).__name__)
