"""Ollama native chat (``POST /api/chat``) wire format.

This module owns Ollama's request checks (no auth; a Bearer key starting with ``bad`` still
gets 401; required ``model`` and ``messages``; roles system/user/assistant/tool;
``options.num_predict`` as max tokens, negative = unlimited), the reply with ``done: true``,
``done_reason`` (``stop``/``length``), ``prompt_eval_count``/``eval_count`` and durations in
nanoseconds, and the ``{"error": "..."}`` envelope (404 ``model 'x' not found``).

``stream`` defaults to true in Ollama: unless the request says ``"stream": false`` the reply is
an NDJSON stream (``application/x-ndjson``): one ``done: false`` line per chunk of text, then a
final ``done: true`` line carrying the metrics (and the tool calls).

Features: ``tools`` (OpenAI-like), ``format`` ``"json"`` or a schema, ``options.stop``/``seed``/
``top_p``/``temperature``/..., raw-base64 ``images`` per message (a data URL is rejected as
Ollama does: ``illegal base64 data``), assistant ``tool_calls`` with object arguments, ``tool``
messages (``tool_name``). Tool calls come back as ``message.tool_calls[{id, function: {index,
name, arguments: object}}]`` with ``done_reason: stop``. No tool choice exists. Stricter than
Ollama: top-level OpenAI-only fields (``response_format``, ``tool_choice``, ``stop``, ``seed``,
``temperature``, ...), which Ollama silently ignores, are rejected so a dropped feature shows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from simulator.providers.base import (
    Dialect,
    Rendered,
    SimError,
    dumps,
    invalid,
    require_list,
    require_str,
)
from simulator.providers.oai_shape import check_base64, parse_tools
from simulator.textgen import ChatRequest, Completion
from simulator.tooling import Features

ROLES = frozenset({"system", "user", "assistant", "tool"})
OPENAI_ONLY = frozenset(
    {
        "response_format",
        "tool_choice",
        "parallel_tool_calls",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "top_p",
        "temperature",
        "n",
        "frequency_penalty",
        "presence_penalty",
        "user",
    }
)


def _format(fmt: Any, features: Features) -> None:
    if fmt is None or fmt == "":
        return
    if fmt == "json":
        features.json = True
    elif isinstance(fmt, dict):
        features.json, features.schema = True, fmt
    else:
        raise invalid(f'invalid format: {fmt!r}; expected "json" or a JSON schema object')


def _message_extras(message: dict[str, Any], features: Features) -> str:
    """Count ``images`` (raw base64) and return tool-call text of one message."""
    images = message.get("images") or []
    for image in images:
        if not isinstance(image, str) or image.startswith("data:"):
            raise invalid("illegal base64 data at input byte 4")
        try:
            check_base64(image, "images")
        except SimError:
            raise invalid("illegal base64 data at input byte 0") from None
        features.add_image(image)
    texts: list[str] = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        args = fn.get("arguments") if isinstance(fn, dict) else None
        if not isinstance(args, dict):
            raise invalid(
                "json: cannot unmarshal string into Go struct field "
                "ToolCallFunction.messages.tool_calls.function.arguments of type "
                "api.ToolCallFunctionArguments"
            )
        texts.append(str(fn.get("name", "")) + json.dumps(args))
        features.history_calls += 1
    return "".join(texts)


NDJSON = "application/x-ndjson"
_WORDS_PER_CHUNK = 8
_NS_PER_TOKEN = 10_000_000


def _num_predict(options: Any) -> int | None:
    if options is None:
        return None
    if not isinstance(options, dict):
        raise invalid("options must be an object")
    value = options.get("num_predict")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid('option "num_predict" must be of type integer')
    if value < 0:
        return None
    if value == 0:
        raise invalid("num_predict must be greater than 0")
    return value


class OllamaDialect(Dialect):
    """A local Ollama server's native API."""

    name: ClassVar[str] = "ollama"
    base_path: ClassVar[str] = ""
    chat_path: ClassVar[str] = "/api/chat"
    request_id_header: ClassVar[str | None] = None
    auth_required: ClassVar[bool] = False
    messages: ClassVar[dict[str, str]] = {
        "auth_bad": "unauthorized",
        "not_found": "model '{model}' not found",
        "context": "prompt too long; exceeded max context length by {excess} tokens",
        "rate_limit": "server busy, please try again. maximum pending requests exceeded",
        "server": "llama runner process has terminated: exit status 2",
        "unavailable": "server busy, please try again",
        "timeout": "timed out waiting for llama runner to start",
    }

    def parse(self, body: Any, request: web.Request) -> ChatRequest:
        if not isinstance(body, dict):
            raise invalid("invalid request body")
        for name in body:
            if name in OPENAI_ONLY:
                raise invalid(
                    f"unsupported field {name!r} for /api/chat (an OpenAI /v1 field: Ollama's "
                    "native API would ignore it; use format, options.* or tools)"
                )
        model = require_str(body, "model")
        messages = require_list(body, "messages")
        features = Features()
        parse_tools(body.get("tools"), features, strict_rules=False)
        _format(body.get("format"), features)
        texts: list[str] = []
        last_user = ""
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise invalid(f"messages[{i}] must be an object")
            role = message.get("role")
            if role not in ROLES:
                raise invalid(f"invalid role: {role!r}")
            content = message.get("content", "")
            if not isinstance(content, str):
                raise invalid(
                    "json: cannot unmarshal array into Go struct field Message.messages.content of type string"
                )
            text = content + _message_extras(message, features)
            features.tool_results += role == "tool"
            texts.append(text)
            if role == "user":
                last_user = text
        features.after_tool = messages[-1].get("role") == "tool"
        options = body.get("options")
        max_tokens = _num_predict(options)
        if isinstance(options, dict) and options.get("stop") is not None:
            stop = options["stop"]
            if not isinstance(stop, list) or not all(isinstance(x, str) for x in stop):
                raise invalid('option "stop" must be of type array')
            features.stop = list(stop)
        if isinstance(options, dict) and options.get("seed") is not None:
            features.seed = options["seed"]
        stream = body.get("stream", True) is not False
        return ChatRequest(model, texts, len(messages), last_user, max_tokens, stream, features)

    def _final(self, chat: ChatRequest, done: Completion, content: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if done.tool_calls:
            message["tool_calls"] = [
                {
                    "id": "call_" + call.id[:8],
                    "function": {"index": i, "name": call.name, "arguments": call.arguments},
                }
                for i, call in enumerate(done.tool_calls)
            ]
        prompt_ns = done.prompt_tokens * _NS_PER_TOKEN // 10
        eval_ns = done.completion_tokens * _NS_PER_TOKEN
        return {
            "model": chat.model,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "message": message,
            "done": True,
            "done_reason": "length" if done.truncated else "stop",
            "total_duration": prompt_ns + eval_ns,
            "load_duration": 0,
            "prompt_eval_count": done.prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": done.completion_tokens,
            "eval_duration": eval_ns,
        }

    def render(self, chat: ChatRequest, done: Completion, request_id: str) -> Rendered:
        if not chat.stream:
            return Rendered(200, dumps(self._final(chat, done, done.text)))
        created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        words = done.text.split(" ")
        lines: list[bytes] = []
        for start in range(0, len(words), _WORDS_PER_CHUNK):
            piece = " ".join(words[start : start + _WORDS_PER_CHUNK])
            if start:
                piece = " " + piece
            chunk = {
                "model": chat.model,
                "created_at": created,
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            lines.append(dumps(chunk))
        lines.append(dumps(self._final(chat, done, "")))
        return Rendered(200, b"\n".join(lines) + b"\n", content_type=NDJSON)

    def error_body(self, err: SimError, message: str, request_id: str) -> Any:
        return {"error": message}
