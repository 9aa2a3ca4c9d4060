"""Guaranteed structured output: does a reply give what its request asked for?

Owns: `check_output`, a pure function of the request's features and the parsed reply, and its
values (`Valid`, `Invalid`). A job succeeds only with a `Valid` reply; an `Invalid` one becomes
a failed attempt of kind `invalid_output` or `refused` (workers/attempt.py builds the error,
workers/retry.py decides what next). Must not: do I/O, read the clock, or know a provider's
wire format (adapters already turned the reply into `ProviderReply`).

The rules, in order:

1. A refusal (`ProviderReply.refusal`) is `refused`, whatever else the reply holds: it is
   reported as a refusal, never as invalid JSON.
2. Tool calls: each must name a tool the request offered (none may appear under
   `tool_choice: none`, and a named choice allows only that tool); its arguments must parse as a
   JSON object and, when the tool declares `parameters`, validate against them.
3. A forced choice (`required`, or a named tool) with no tool call is invalid.
4. JSON output (`json_object` / `json_schema`): the text must parse (one surrounding Markdown
   code fence is tolerated: some models add it) as a JSON object for `json_object`, and
   validate against the schema for `json_schema`. A reply that made tool calls and has no text
   is a tool-call turn, not invalid JSON. `NaN` / `Infinity` are not JSON and are refused.

Schemas were checked at submit (core/jsonl_features.py), so a validator can always be built;
they are compiled once per distinct schema (`_validator`, a small LRU).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from jsonschema import validators
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from schemas.request import Features, NamedToolChoice, ToolCall

MAX_REASON = 240  # characters of a validation message kept in the reason
_FENCE = "```"


@dataclass(frozen=True, slots=True)
class Valid:
    """The reply gives what was asked for. `parsed`: the JSON value of the text when JSON was
    asked for and the text is non-empty, else None."""

    parsed: Any = None


@dataclass(frozen=True, slots=True)
class Invalid:
    """The reply does not: `kind` names the failure, `reason` says why in one line."""

    kind: Literal["invalid_output", "refused"]
    reason: str


def check_output(
    features: Features,
    text: str,
    tool_calls: tuple[ToolCall, ...],
    refusal: str | None,
    finish_reason: str | None = None,
) -> Valid | Invalid:
    """Check one reply against its request's output contract (the module docstring's rules).

    Args:
        features: the request's features (response_format, tools, tool_choice).
        text: the reply's text ("" when none).
        tool_calls: the reply's tool calls (arguments as JSON text).
        refusal: the model's refusal text, or None.
        finish_reason: OpenAI's word for how the reply ended; `length` is named in reasons
            (a reply cut at max_tokens is a common cause of broken JSON).
    """
    if refusal is not None:
        return Invalid("refused", f"the model refused: {_clip(refusal) or '(no text)'}")
    cut = " (the reply was cut at max_tokens)" if finish_reason == "length" else ""
    problem = _tool_problem(features, tool_calls)
    if problem is not None:
        return Invalid("invalid_output", problem + cut)
    if not features.wants_json or (tool_calls and not text.strip()):
        return Valid()
    fmt = features.response_format
    assert fmt is not None  # wants_json
    value, problem = _parse_json(text)
    if problem is None and fmt.type == "json_object" and not isinstance(value, dict):
        problem = f"json_object asked for an object, got {_type_name(value)}"
    schema = fmt.schema_
    if problem is None and schema is not None:
        problem = _schema_problem(schema, value, "the reply")
    if problem is not None:
        return Invalid("invalid_output", problem + cut)
    return Valid(value)


def _tool_problem(features: Features, calls: tuple[ToolCall, ...]) -> str | None:
    choice = features.tool_choice
    offered = {t.function.name: t.function.parameters for t in features.tools or ()}
    if not calls:
        if choice == "required":
            return "tool_choice required asked for a tool call; the reply has none"
        if isinstance(choice, NamedToolChoice):
            return f"tool_choice named {choice.name!r}; the reply calls no tool"
        return None
    if choice == "none":
        return "tool_choice none forbade tool calls; the reply has some"
    for call in calls:
        if call.name not in offered:
            return f"tool call {call.id}: {call.name!r} is not a tool the request offered"
        if isinstance(choice, NamedToolChoice) and call.name != choice.name:
            return f"tool call {call.id}: {call.name!r}, but tool_choice named {choice.name!r}"
        args, problem = _parse_json(call.arguments)
        if problem is not None:
            return f"tool call {call.id} ({call.name}): arguments are {problem}"
        if not isinstance(args, dict):
            got = _type_name(args)
            return f"tool call {call.id} ({call.name}): arguments are {got}, not an object"
        params = offered[call.name]
        if params is not None:
            problem = _schema_problem(params, args, f"tool call {call.id} ({call.name}) arguments")
            if problem is not None:
                return problem
    return None


def _parse_json(text: str) -> tuple[Any, str | None]:
    """(value, None), or (None, why it is not JSON)."""
    body = _unfenced(text)
    if not body:
        return None, "empty, not JSON"
    try:
        return json.loads(body, parse_constant=_no_constant), None
    except ValueError as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return None, f"not JSON ({_clip(why)})"


def _unfenced(text: str) -> str:
    """The text inside one surrounding Markdown code fence (```json ... ```), else the text."""
    body = text.strip()
    if body.startswith(_FENCE) and body.endswith(_FENCE) and len(body) >= 2 * len(_FENCE):
        inner = body[len(_FENCE) : -len(_FENCE)]
        first, newline, rest = inner.partition("\n")
        if newline and (not first.strip() or first.strip().isalnum()):  # a language tag
            inner = rest
        return inner.strip()
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _schema_problem(schema: dict[str, Any], value: Any, what: str) -> str | None:
    validator = _validator(json.dumps(schema, sort_keys=True))
    error = best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    at = f" at /{where}" if where else ""
    return f"{what} does not match the schema{at}: {_clip(error.message)}"


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Validator:
    schema = json.loads(schema_json)
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    return cls(schema)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
