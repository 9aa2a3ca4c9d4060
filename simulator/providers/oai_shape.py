"""OpenAI-shaped request pieces shared by OpenAI, the HF router, local servers and Cohere v2.

This module owns the checks and the translation into ``tooling.Features`` of: chat messages
(text and ``image_url`` parts, assistant ``tool_calls`` with string arguments, ``tool``
messages answering an earlier call by ``tool_call_id``), ``tools`` (``{"type": "function",
"function": {name, description, parameters, strict}}``), OpenAI's ``tool_choice`` and
``response_format``, and ``strict`` schema rules (every property required,
``additionalProperties: false`` everywhere, an object at the root), per
shared/reference/request-fidelity.md. Must not: build replies.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from simulator.providers.base import SimError, invalid
from simulator.tooling import Features, Tool

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def bad(message: str, param: str | None = None, code: str | None = None) -> SimError:
    """A 400 carrying OpenAI's ``param``/``code``."""
    ctx: dict[str, Any] = {"param": param}
    if code:
        ctx["code"] = code
    return SimError(400, "invalid", message, ctx=ctx)


def check_image_url(url: Any, where: str, *, allow_http: bool = True) -> str:
    """An ``image_url.url``: https/http URL or ``data:image/...;base64,`` with valid base64."""
    if not isinstance(url, str) or not url:
        raise bad(f"Invalid '{where}': expected a URL string.", where)
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        if not head.startswith("data:image/") or not head.endswith(";base64"):
            raise bad(f"Invalid '{where}': unsupported data URL; expected data:image/*;base64.")
        check_base64(data, where)
        return data
    if allow_http and url.startswith(("https://", "http://")):
        return url
    raise bad(f"Invalid '{where}': Expected a valid URL, but got a value with an invalid format.")


def check_base64(data: Any, where: str) -> None:
    """Raise 400 unless ``data`` is non-empty valid base64."""
    try:
        if not isinstance(data, str) or not data:
            raise ValueError
        base64.b64decode(data, validate=True)
    except (ValueError, binascii.Error):
        raise bad(f"Invalid '{where}': image data is not valid base64.", where) from None


def content_parts(content: Any, where: str, features: Features) -> str:
    """Text of an OpenAI ``content`` (string or parts); images counted into ``features``."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise bad(f"Invalid type for '{where}': expected a string or an array of parts.", where)
    texts: list[str] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise bad(f"Invalid type for '{where}[{j}]': expected an object.", f"{where}[{j}]")
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            features.add_image(check_image_url(url, f"{where}[{j}].image_url.url"))
        elif kind == "document":  # Cohere tool results
            texts.append(json.dumps(part.get("document"), sort_keys=True))
        else:
            raise bad(f"Invalid value: '{kind}'. Supported values are: 'text' and 'image_url'.")
    return "".join(texts)


def assistant_calls(message: dict[str, Any], where: str) -> tuple[list[str], str]:
    """Ids of an assistant message's ``tool_calls`` and their text (for token counting)."""
    calls = message.get("tool_calls")
    if calls is None:
        return [], ""
    if not isinstance(calls, list):
        raise bad(f"Invalid type for '{where}.tool_calls': expected an array.")
    ids: list[str] = []
    texts: list[str] = []
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(call.get("id"), str):
            raise bad(f"Missing required parameter: '{where}.tool_calls[{k}].id'.")
        args = fn.get("arguments")
        if not isinstance(args, str):
            raise bad(
                f"Invalid type for '{where}.tool_calls[{k}].function.arguments': expected a "
                "string, but got an object instead.",
                f"{where}.tool_calls[{k}].function.arguments",
                "invalid_type",
            )
        ids.append(call["id"])
        texts.append(str(fn.get("name", "")) + args)
    return ids, "".join(texts)


def walk_messages(
    messages: list[Any], roles: frozenset[str], features: Features
) -> tuple[list[str], str]:
    """Check OpenAI-shaped messages; returns (texts, last user text), fills ``features``."""
    texts: list[str] = []
    last_user = ""
    open_ids: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad(f"Invalid type for '{where}': expected an object.", where)
        role = message.get("role")
        if role not in roles:
            allowed = ", ".join(f"'{r}'" for r in sorted(roles))
            raise bad(
                f"Invalid value: '{role}'. Supported values are: {allowed}.",
                f"{where}.role",
                "invalid_value",
            )
        text = content_parts(message.get("content"), f"{where}.content", features)
        if role == "assistant":
            ids, call_text = assistant_calls(message, where)
            open_ids = set(ids)
            features.history_calls += len(ids)
            text += call_text
        if role == "tool":
            features.tool_results += 1
            call_id = message.get("tool_call_id")
            if call_id not in open_ids:
                raise bad(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"{where}.role",
                )
        texts.append(text)
        if role == "user":
            last_user = text
    features.after_tool = bool(messages) and messages[-1].get("role") == "tool"
    return texts, last_user


def parse_tools(tools: Any, features: Features, *, strict_rules: bool) -> None:
    """OpenAI/Cohere ``tools`` into ``features.tools``."""
    if tools is None:
        return
    if not isinstance(tools, list):
        raise bad("Invalid type for 'tools': expected an array.", "tools")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise bad(f"Missing required parameter: 'tools[{i}].function'.", f"tools[{i}]")
        name = fn.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise bad(
                f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected "
                "a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"tools[{i}].function.name",
                "invalid_value",
            )
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise bad(f"Invalid type for 'tools[{i}].function.parameters': expected an object.")
        if strict_rules and fn.get("strict") and params is not None:
            check_strict(params, f"function '{name}'")
        features.tools.append(Tool(name, params))


def parse_tool_choice(choice: Any, features: Features) -> None:
    """OpenAI ``tool_choice``: auto/none/required or a named function."""
    if choice is None:
        return
    if choice is not None and not features.tools:
        raise bad(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            "tool_choice",
        )
    if choice in ("auto", "none", "required"):
        features.choice = choice
        return
    fn = choice.get("function") if isinstance(choice, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str):
        raise bad("Invalid value for 'tool_choice'.", "tool_choice", "invalid_value")
    if name not in {t.name for t in features.tools}:
        raise bad(
            f"Invalid value for 'tool_choice': tool '{name}' not found in 'tools'.",
            "tool_choice",
        )
    features.choice, features.named = "named", name


def parse_response_format(fmt: Any, features: Features, *, strict_rules: bool) -> None:
    """OpenAI ``response_format`` into ``features.json``/``schema``."""
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        features.json = True
        value = fmt.get("value")  # huggingface_hub's TGI form: {"type": "json_object", "value"}
        if not strict_rules and isinstance(value, dict):
            features.schema = value
        return
    if kind != "json_schema":
        raise bad(
            f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema' and "
            "'text'.",
            "response_format.type",
            "invalid_value",
        )
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        raise bad(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
        )
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise bad(
            "Invalid 'response_format.json_schema.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "response_format.json_schema.name",
            "invalid_value",
        )
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise bad("Invalid type for 'response_format.json_schema.schema': expected an object.")
    if strict_rules and spec.get("strict") and schema is not None:
        check_strict(schema, f"response_format '{name}'")
    features.json, features.schema = True, schema


OPENAI_FIELDS = frozenset(
    {
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions",
        "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities",
        "n", "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier",
        "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    }
)  # fmt: skip


def check_known(body: dict[str, Any]) -> None:
    """api.openai.com refuses parameters it does not know."""
    for name in body:
        if name not in OPENAI_FIELDS:
            raise bad(f"Unrecognized request argument supplied: {name}", name)


def check_strict(schema: dict[str, Any], label: str) -> None:
    """OpenAI strict mode: object root, all properties required, no additional properties."""
    if schema.get("type") != "object":
        raise bad(
            f"Invalid schema for {label}: schema must be a JSON Schema of 'type: \"object\"', "
            f"got 'type: \"{schema.get('type')}\"'.",
            code="invalid_json_schema",
        )
    _strict_walk(schema, (), label)


def _strict_walk(node: Any, context: tuple[str, ...], label: str) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _strict_walk(item, (*context, str(i)), label)
        return
    if not isinstance(node, dict):
        return
    props = node.get("properties")
    if node.get("type") == "object" or isinstance(props, dict):
        where = f"In context={context}, "
        if node.get("additionalProperties") is not False:
            raise bad(
                f"Invalid schema for {label}: {where}'additionalProperties' is required to be "
                "supplied and to be false.",
                code="invalid_json_schema",
            )
        missing = [k for k in (props or {}) if k not in (node.get("required") or [])]
        if missing:
            raise bad(
                f"Invalid schema for {label}: {where}'required' is required to be supplied and "
                f"to be an array including every key in properties. Missing '{missing[0]}'.",
                code="invalid_json_schema",
            )
    for key, value in node.items():
        if isinstance(value, dict | list) and key not in ("enum", "const", "default"):
            _strict_walk(value, (*context, key), label)


def string_list(value: Any, name: str, limit: int | None) -> list[str]:
    """A stop value: a string or a list of strings, at most ``limit`` of them."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise bad(f"Invalid type for '{name}': expected a string or an array of strings.", name)
    if limit is not None and len(items) > limit:
        raise bad(
            f"Invalid '{name}': array too long. Expected an array with maximum length {limit}, "
            f"but got an array with length {len(items)} instead.",
            name,
            "array_above_max_length",
        )
    return list(items)


def number_in(body: dict[str, Any], name: str, low: float, high: float) -> None:
    """Raise 400 if ``body[name]`` is present and not a number in [low, high]."""
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(f"Invalid type for '{name}': expected a number.", name, "invalid_type")
    if not low <= value <= high:
        raise bad(
            f"Invalid '{name}': {value} is out of range [{low:g}, {high:g}].",
            name,
            "invalid_value",
        )


def integer(body: dict[str, Any], name: str) -> None:
    """Raise 400 if ``body[name]`` is present and not an integer."""
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise invalid(f"Invalid type for '{name}': expected an integer.")
