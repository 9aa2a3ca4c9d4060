"""Shared pieces of request-feature translation (issue 15) that several adapters need.

Owns: capability overrides (`with_overrides`), the system/turn split, tool-call arguments
converted between OpenAI's JSON text and the objects other wire formats carry (exactly once in
each direction, never double-encoded), minted tool-call ids, the tool name behind a tool result,
function results as JSON objects, a JSON Schema walker for providers that accept a subset, and
`Unsendable` with `refusals()` (a request part an adapter will not send becomes `BadRequest`).
Must not: know any provider's wire format, or do I/O. Reference:
/work/shared/reference/request-fidelity.md (traps 1-3).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from schemas.request import Feature, ToolCall

if TYPE_CHECKING:
    from schemas.job import ChatMessage
    from workers.providers.base import ProviderAdapter, ProviderRequest

# What `json_object` becomes where only a schema can ask for JSON (any object).
PERMISSIVE_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": True}
# JSON Schema keywords whose values are schemas: a map of them, a list of them, or one.
SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


class Unsendable(ValueError):
    """A request part this adapter cannot express on its wire format: refuse, never drop."""


@contextmanager
def refusals(adapter: ProviderAdapter) -> Iterator[None]:
    """Turn `Unsendable` raised while building a body into the adapter's `BadRequest`."""
    try:
        yield
    except Unsendable as exc:
        raise adapter.refuse(str(exc)) from exc


def with_overrides(
    defaults: frozenset[Feature], overrides: Mapping[Feature, bool] | None
) -> frozenset[Feature]:
    """`defaults` changed by a deployment's `capabilities:` (true adds, false removes)."""
    out = set(defaults)
    for feature, on in (overrides or {}).items():
        (out.add if on else out.discard)(feature)
    return frozenset(out)


def split_system(req: ProviderRequest) -> tuple[str | None, list[ChatMessage]]:
    """The request's system text (`system` plus any system-role messages, in order) and the
    remaining messages, for APIs that take the system prompt outside the message list."""
    parts = [req.system] if req.system else []
    rest: list[ChatMessage] = []
    for message in req.messages:
        if message.role == "system":
            parts.append(message.text)
        else:
            rest.append(message)
    return ("\n\n".join(parts) if parts else None), rest


# ---- tool calls -----------------------------------------------------------------------------


def args_object(call: ToolCall) -> dict[str, Any]:
    """A call's JSON-text arguments as the object Anthropic, Gemini and Ollama carry."""
    try:
        value = json.loads(call.arguments) if call.arguments.strip() else {}
    except json.JSONDecodeError as exc:
        raise Unsendable(f"tool call {call.id}: arguments are not JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise Unsendable(f"tool call {call.id}: arguments must be a JSON object")
    return value


def args_text(value: Any) -> str:
    """Arguments from a reply as OpenAI's JSON text. An object is serialised once; a string is
    already JSON text and is kept as it is (serialising it again would double-encode)."""
    if isinstance(value, str):
        return value
    return json.dumps({} if value is None else value, ensure_ascii=False, separators=(",", ":"))


def mint_id(index: int, name: str, arguments: str) -> str:
    """A stable id for a call the provider gave none (Gemini, Ollama): same reply, same id."""
    digest = hashlib.sha256(f"{index}\0{name}\0{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def tool_call(index: int, call_id: Any, name: Any, arguments: Any) -> ToolCall:
    """A reply's tool call in our form; a missing id is minted."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"tool call {index} has no function name")
    text = args_text(arguments)
    if isinstance(call_id, str) and call_id:
        return ToolCall(id=call_id, name=name, arguments=text)
    return ToolCall(id=mint_id(index, name, text), name=name, arguments=text)


def tool_names(messages: Iterable[ChatMessage]) -> dict[str, str]:
    """Tool-call id -> function name, from the assistant turns' calls (for wire formats whose
    tool results carry the function's name rather than the call's id)."""
    return {c.id: c.name for m in messages for c in m.tool_calls or ()}


def name_for(names: Mapping[str, str], message: ChatMessage) -> str:
    call_id = message.tool_call_id or ""
    if call_id not in names:
        raise Unsendable(f"tool result {call_id!r} answers no earlier assistant tool call")
    return names[call_id]


def result_object(text: str) -> dict[str, Any]:
    """A tool result as a JSON object: the text's JSON when it is an object, else wrapped as
    `{"result": value}` (the value parsed when it is JSON, else the text)."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    return value if isinstance(value, dict) else {"result": value}


def finish_with_calls(finish: str | None, calls: tuple[ToolCall, ...]) -> str | None:
    """OpenAI's word for how the reply ended, decided by the presence of tool calls (a forced
    tool ends with `stop` on OpenAI, Gemini always says STOP) rather than the provider's; a
    reply cut short stays `length` (its last call may be incomplete)."""
    if calls and finish != "length":
        return "tool_calls"
    return "stop" if finish == "tool_calls" else finish


# ---- JSON Schema -----------------------------------------------------------------------------


def map_schema(schema: Any, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    """`fn` applied to every (sub)schema, innermost first; property names are never touched."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: map_schema(sub, fn) for name, sub in out[key].items()}
    for key in SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [map_schema(sub, fn) for sub in out[key]]
    for key in SCHEMA_ONE:
        if isinstance(out.get(key), dict):
            out[key] = map_schema(out[key], fn)
        elif key == "items" and isinstance(out.get(key), list):
            out[key] = [map_schema(sub, fn) for sub in out[key]]
    return fn(out)


def keep_keywords(schema: Any, allowed: frozenset[str]) -> Any:
    """`schema` with only `allowed` keywords at every level. For providers that reject the
    rest: the pipeline still validates the reply against the caller's full schema."""
    return map_schema(schema, lambda s: {k: v for k, v in s.items() if k in allowed})
