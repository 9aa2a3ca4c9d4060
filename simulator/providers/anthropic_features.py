"""Anthropic Messages request features: content blocks, tools, structured output, sampling.

This module owns the checks Anthropic's API makes on what llmq translates (per
shared/reference/request-fidelity.md) and their translation into ``tooling.Features``:

* unknown top-level fields -> 400 ``<field>: Extra inputs are not permitted`` (the beta
  ``output_format`` is known only with an ``anthropic-beta: structured-outputs-...`` header);
* content blocks ``text``, ``image`` (source ``base64`` with jpeg/png/gif/webp, ``url``,
  ``file``), ``tool_use`` (object ``input``, assistant only), ``tool_result`` (must answer a
  ``tool_use`` id of the previous assistant turn), ``thinking``/``redacted_thinking``,
  ``document``; tool blocks need ``tools`` declared;
* ``tools`` (``name``, ``input_schema``), ``tool_choice`` auto/any/tool/none (+
  ``disable_parallel_tool_use``); a forcing choice (any/tool) with thinking enabled -> 400
  ``Thinking may not be enabled when tool_choice forces tool use.``;
* ``output_config.format`` ``{"type": "json_schema", "schema"}``;
* ``stop_sequences`` (whitespace-only rejected), ``temperature`` 0-1, and ``temperature`` with
  ``top_p`` -> 400 on models whose id contains 4-5, 4.5, 4-6, 4.6 or opus-4-1 (Sonnet/Haiku 4.5+,
  Opus 4.1+).
"""

from __future__ import annotations

import json
from typing import Any

from simulator.providers.base import content_text, invalid
from simulator.providers.oai_shape import check_base64
from simulator.tooling import Features, Tool

KNOWN = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "inference_geo",
    }
)
MEDIA = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
NO_TEMPERATURE_WITH_TOP_P = ("4-5", "4.5", "4-6", "4.6", "opus-4-1")


def check_top_level(body: dict[str, Any], beta: str) -> None:
    """400 for a field the API does not know (see the module docstring)."""
    known = KNOWN | ({"output_format"} if "structured-outputs" in beta else set())
    for name in body:
        if name not in known:
            raise invalid(f"{name}: Extra inputs are not permitted")


def _image(block: dict[str, Any], where: str, features: Features) -> None:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        media = source.get("media_type")
        if media not in MEDIA:
            raise invalid(
                f"{where}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                "'image/gif' or 'image/webp'"
            )
        try:
            check_base64(source.get("data"), where)
        except Exception:
            raise invalid(f"{where}.source.base64.data: invalid base64 data") from None
        features.add_image(source["data"])
    elif kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise invalid(f"{where}.source.url.url: Input should be a valid URL")
        features.add_image(url)
    elif kind == "file":
        features.add_image(str(source.get("file_id", "")))
    else:
        raise invalid(f"{where}.source: Input tag '{kind}' found using 'type' does not match")


def walk_content(
    content: Any, role: str, where: str, features: Features, open_ids: set[str]
) -> tuple[str, list[str], bool]:
    """(text for tokens, tool_use ids, has tool_result) of one message's content."""
    if content is None or isinstance(content, str):
        return content_text(content, where), [], False
    if not isinstance(content, list):
        raise invalid(f"{where}: Input should be a valid string or list")
    texts: list[str] = []
    ids: list[str] = []
    has_result = False
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "image":
            _image(block, at, features)
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(block.get("input"), dict):
                raise invalid(f"{at}.tool_use.input: Input should be a valid dictionary")
            ids.append(str(block.get("id")))
            features.history_calls += 1
            texts.append(str(block.get("name", "")) + json.dumps(block["input"]))
        elif kind == "tool_result" and role == "user":
            if block.get("tool_use_id") not in open_ids:
                raise invalid(
                    f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block.get('tool_use_id')}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
            has_result = True
            features.tool_results += 1
            texts.append(content_text(block.get("content"), f"{at}.content"))
        elif kind in ("thinking", "redacted_thinking", "document") and kind:
            texts.append(str(block.get("thinking", "")))
        else:
            raise invalid(f"{at}: Input tag '{kind}' found using 'type' is not allowed here")
    return "".join(texts), ids, has_result


def _declared(tools: Any, features: Features) -> None:
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise invalid(f"tools.{i}.name: Field required")
            schema = tool.get("input_schema")
            if tool.get("type") not in (None, "custom"):
                continue  # server tools (web search, ...) take no input_schema
            if not isinstance(schema, dict):
                raise invalid(f"tools.{i}.custom.input_schema: Field required")
            features.tools.append(Tool(tool["name"], schema))


def parse_tools(body: dict[str, Any], features: Features) -> None:
    """``tools`` and ``tool_choice`` (and the thinking conflict)."""
    _declared(body.get("tools"), features)
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise invalid("tool_choice: Input tag found using 'type' does not match any of the tags")
    if not features.tools and kind != "none":
        raise invalid("tool_choice may only be specified while providing tools.")
    features.parallel = not choice.get("disable_parallel_tool_use", False)
    features.choice = {"any": "required", "tool": "named"}.get(kind, kind)
    if kind == "tool":
        name = choice.get("name")
        if name not in {t.name for t in features.tools}:
            raise invalid(f"tool_choice.tool.name: Tool '{name}' not found in tools")
        features.named = name
    thinking = body.get("thinking")
    if kind in ("any", "tool") and isinstance(thinking, dict):
        if thinking.get("type") in ("enabled", "adaptive"):
            raise invalid("Thinking may not be enabled when tool_choice forces tool use.")


def parse_output(body: dict[str, Any], features: Features) -> None:
    """``output_config.format`` (GA) or the beta ``output_format``."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if config is not None and not isinstance(config, dict):
        raise invalid("output_config: Input should be a valid dictionary")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise invalid("output_config.format.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise invalid("output_config.format.json_schema.schema: Field required")
    features.json, features.schema = True, schema


def parse_sampling(body: dict[str, Any], model: str, features: Features) -> None:
    """``stop_sequences``, ``temperature``, ``top_p``, ``top_k``."""
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid("stop_sequences: Input should be a valid list of strings")
        if any(not s.strip() for s in stops):
            raise invalid("stop_sequences: each stop sequence must contain non-whitespace")
        features.stop = list(stops)
    temperature = body.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, int | float) and 0 <= temperature <= 1
    ):
        raise invalid("temperature: Input should be less than or equal to 1")
    if temperature is not None and body.get("top_p") is not None:
        if any(tag in model for tag in NO_TEMPERATURE_WITH_TOP_P):
            raise invalid(
                "`temperature` and `top_p` cannot both be specified for this model. "
                "Please use only one."
            )
