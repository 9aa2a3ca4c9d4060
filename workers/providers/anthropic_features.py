"""The Messages API form of the request surface (issue 15): turns as content blocks, JSON output,
tools, tool choice and sampling; and the reply's tool_use blocks back to OpenAI's form.

Owns, for the Anthropic adapter: images as `image` blocks (base64 split from data: URLs, or
url); assistant tool calls as `tool_use` blocks (arguments as objects) and tool results as
`tool_result` blocks in user turns (consecutive results in one user turn, so turns still
alternate); JSON output through native `output_config.format` on models that have it (schema
cut to the supported subset, the rest moved to descriptions, as the SDK's `transform_schema`
does), else through a tool `json_tool_call` whose input is serialised back to the text;
`tool_choice` auto/any/none/tool with `disable_parallel_tool_use`; `stop_sequences`, `top_p`,
`metadata.user_id`. Must not: do I/O or send a feature the API has no field for (seed and
penalties are refused). References: https://platform.claude.com/docs/en/build-with-claude/
structured-outputs, /tool-use, /vision; request-fidelity.md §1-4.
"""

from __future__ import annotations

import re
from typing import Any

from schemas.job import ChatMessage
from schemas.request import Features, ImageUrl, NamedToolChoice, TextPart, ToolSpec
from workers.providers.features import (
    PERMISSIVE_SCHEMA,
    Unsendable,
    args_object,
    map_schema,
    tool_names,
)

JSON_TOOL = "json_tool_call"  # the classic trick's tool; reserved on this adapter
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
EMPTY_INPUT = {"type": "object", "properties": {}}
# Native structured output: Sonnet/Opus 4.5+, Haiku 4.5 (request-fidelity.md §1).
NATIVE_JSON_FROM = (4, 5)
# Models answering 400 when temperature and top_p come together (BerriAI/litellm#15097).
NO_TOP_P_WITH_TEMPERATURE = {"sonnet": (4, 5), "haiku": (4, 5), "opus": (4, 1)}
_MODEL = re.compile(r"claude-(opus|sonnet|haiku)-(\d+)(?:-(\d{1,2}))?(?:-|$)")
# The schema subset native structured output accepts (SDK `transform_schema`).
FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
KEPT = frozenset(
    {"type", "properties", "required", "items", "enum", "anyOf", "allOf", "$defs"}
    | {"definitions", "description", "title"}
)


def family_version(model_id: str) -> tuple[str, tuple[int, int]] | None:
    """("sonnet", (4, 5)) for `claude-sonnet-4-5-20250929`; None for other id shapes
    (`claude-3-5-sonnet-...` predates every feature that depends on it)."""
    m = _MODEL.search(model_id)
    if not m:
        return None
    return m.group(1), (int(m.group(2)), int(m.group(3) or 0))


def has_native_json(model_id: str) -> bool:
    fv = family_version(model_id)
    return fv is not None and fv[1] >= NATIVE_JSON_FROM


def rejects_top_p_with_temperature(model_id: str) -> bool:
    fv = family_version(model_id)
    return fv is not None and fv[1] >= NO_TOP_P_WITH_TEMPERATURE[fv[0]]


# ---- turns ----------------------------------------------------------------------------------


def image_block(image: ImageUrl) -> dict[str, Any]:
    if not image.is_data:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    media_type, data = image.data_parts()
    if media_type not in IMAGE_TYPES:
        raise Unsendable(f"image type {media_type} (Claude takes jpeg, png, gif, webp)")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def blocks(m: ChatMessage) -> str | list[dict[str, Any]]:
    """One turn's content: its string when it is plain text, else content blocks."""
    if m.role == "tool":
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.text}]
    if isinstance(m.content, str) and not m.tool_calls:
        return m.content
    out: list[dict[str, Any]] = []
    for part in m.content if isinstance(m.content, tuple) else ():
        if isinstance(part, TextPart):
            if part.text:  # empty text blocks are rejected
                out.append({"type": "text", "text": part.text})
        else:
            out.append(image_block(part.image_url))
    if isinstance(m.content, str) and m.content:
        out.append({"type": "text", "text": m.content})
    out.extend(
        {"type": "tool_use", "id": c.id, "name": c.name, "input": args_object(c)}
        for c in m.tool_calls or ()
    )
    return out


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content


def alternating(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Turns alternate user/assistant: tool results become user turns, and consecutive turns
    of one role are joined (text with a blank line, blocks in order) instead of rejected."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = "user" if m.role == "tool" else m.role
        content = blocks(m)
        if out and out[-1]["role"] == role:
            last = out[-1]["content"]
            if isinstance(last, str) and isinstance(content, str):
                out[-1]["content"] = last + "\n\n" + content
            else:
                out[-1]["content"] = _as_blocks(last) + _as_blocks(content)
        else:
            out.append({"role": role, "content": content})
    return out


# ---- features -------------------------------------------------------------------------------


def _subset(s: dict[str, Any]) -> dict[str, Any]:
    """One (sub)schema cut to what native structured output accepts; what is cut is kept in
    the description so the model still sees it. A `$ref` stands alone."""
    if "$ref" in s:
        return {k: v for k, v in s.items() if k in ("$ref", "$defs")}
    out: dict[str, Any] = {}
    moved: list[str] = []
    for key, value in s.items():
        if key == "oneOf":
            out["anyOf"] = value
        elif key in KEPT or (key == "format" and value in FORMATS):
            out[key] = value
        elif key == "minItems" and value in (0, 1):
            out[key] = value
        elif key != "additionalProperties" and not key.startswith("$"):
            moved.append(f"{key}: {value}")
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
    if moved:
        note = "{" + ", ".join(moved) + "}"
        out["description"] = f"{out['description']}\n\n{note}" if "description" in out else note
    return out


def native_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return map_schema(schema, _subset)


def tool_def(tool: ToolSpec, native: bool) -> dict[str, Any]:
    fn = tool.function
    out: dict[str, Any] = {"name": fn.name, "input_schema": fn.parameters or EMPTY_INPUT}
    if fn.description:
        out["description"] = fn.description
    if fn.strict and native:  # strict tools come with native structured output
        out["strict"] = True
        out["input_schema"] = native_schema(out["input_schema"])
    return out


def _choice(features: Features) -> dict[str, Any] | None:
    choice = features.tool_choice
    if choice is None:
        out: dict[str, Any] | None = (
            {"type": "auto"} if features.parallel_tool_calls is False else None
        )
    elif isinstance(choice, NamedToolChoice):
        out = {"type": "tool", "name": choice.name}
    else:
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    if out is not None and out["type"] != "none" and features.parallel_tool_calls is False:
        out["disable_parallel_tool_use"] = True
    return out


def tool_fields(features: Features, messages: list[ChatMessage], native: bool) -> dict[str, Any]:
    """`tools` and `tool_choice` for the request (JSON output aside). Tools used in the
    history but not offered are declared (the API wants every tool_use block's tool declared)
    and, when the caller offered none, made uncallable with `tool_choice: none`."""
    tools = [tool_def(t, native) for t in features.tools or ()]
    if any(t["name"] == JSON_TOOL for t in tools):
        raise Unsendable(f"the tool name {JSON_TOOL!r} is reserved for JSON output")
    declared = {t["name"] for t in tools}
    for name in dict.fromkeys(tool_names(messages).values()):
        if name not in declared:
            tools.append({"name": name, "input_schema": PERMISSIVE_SCHEMA})
    out: dict[str, Any] = {}
    if tools:
        out["tools"] = tools
        choice = _choice(features) if features.tools else {"type": "none"}
        if choice is not None:
            out["tool_choice"] = choice
    return out


def json_fields(features: Features, body: dict[str, Any], native: bool) -> None:
    """JSON output: `output_config.format` (native, json_schema) or the `json_tool_call` tool.

    With the tool: no caller tools (or choice none) -> that tool is forced; caller tools with
    auto -> it joins them and some tool must be called (answering = calling it); required or
    a named tool -> this turn is a tool call anyway, so the caller's choice stands."""
    fmt = features.response_format
    if fmt is None or not fmt.wants_json:
        return
    schema = fmt.schema_
    if native and schema is not None:
        body["output_config"] = {"format": {"type": "json_schema", "schema": native_schema(schema)}}
        return
    choice = features.tool_choice
    if features.tools and (choice == "required" or isinstance(choice, NamedToolChoice)):
        return
    tool = {"name": JSON_TOOL, "input_schema": schema or PERMISSIVE_SCHEMA}
    if fmt.json_schema and fmt.json_schema.description:
        tool["description"] = fmt.json_schema.description
    body["tools"] = [*body.get("tools", ()), tool]
    if features.tools and choice in (None, "auto"):
        body["tool_choice"] = {"type": "any", "disable_parallel_tool_use": True}
    else:
        body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}


def sampling_fields(features: Features, body: dict[str, Any]) -> None:
    s = features.sampling
    if s.seed is not None or s.presence_penalty is not None or s.frequency_penalty is not None:
        raise Unsendable("the Messages API has no seed or penalties")
    if s.stop:
        if any(not stop.strip() for stop in s.stop):
            raise Unsendable("a whitespace-only stop sequence (the API rejects it)")
        body["stop_sequences"] = list(s.stop)
    if s.top_p is not None:
        if "temperature" in body and rejects_top_p_with_temperature(body["model"]):
            raise Unsendable(f"{body['model']} takes temperature or top_p, not both")
        body["top_p"] = s.top_p
    if s.user is not None:
        body["metadata"] = {"user_id": s.user}


def feature_fields(
    features: Features, messages: list[ChatMessage], body: dict[str, Any], native: bool
) -> None:
    """Add every request feature to the Messages `body` (which has model and temperature)."""
    body.update(tool_fields(features, messages, native))
    json_fields(features, body, native)
    sampling_fields(features, body)
