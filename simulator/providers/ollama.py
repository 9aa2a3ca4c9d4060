"""Ollama native chat (``POST /api/chat``) wire format.

This module owns Ollama's request checks (no auth; a Bearer key starting with ``bad`` still
gets 401; required ``model`` and ``messages``; roles system/user/assistant/tool;
``options.num_predict`` as max tokens, negative = unlimited), the reply with ``done: true``,
``done_reason`` (``stop``/``length``), ``prompt_eval_count``/``eval_count`` and durations in
nanoseconds, and the ``{"error": "..."}`` envelope (404 ``model 'x' not found``).

``stream`` defaults to true in Ollama: unless the request says ``"stream": false`` the reply is
an NDJSON stream (``application/x-ndjson``): one ``done: false`` line per chunk of text, then a
final ``done: true`` line carrying the metrics.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from simulator.providers.base import (
    Dialect,
    Rendered,
    SimError,
    content_text,
    dumps,
    invalid,
    require_list,
    require_str,
)
from simulator.textgen import ChatRequest, Completion

ROLES = frozenset({"system", "user", "assistant", "tool"})
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
        model = require_str(body, "model")
        messages = require_list(body, "messages")
        texts: list[str] = []
        last_user = ""
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise invalid(f"messages[{i}] must be an object")
            role = message.get("role")
            if role not in ROLES:
                raise invalid(f"invalid role: {role!r}")
            text = content_text(message.get("content"), f"messages[{i}]")
            texts.append(text)
            if role == "user":
                last_user = text
        max_tokens = _num_predict(body.get("options"))
        stream = body.get("stream", True) is not False
        return ChatRequest(model, texts, len(messages), last_user, max_tokens, stream)

    def _final(self, chat: ChatRequest, done: Completion, content: str) -> dict[str, Any]:
        prompt_ns = done.prompt_tokens * _NS_PER_TOKEN // 10
        eval_ns = done.completion_tokens * _NS_PER_TOKEN
        return {
            "model": chat.model,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "message": {"role": "assistant", "content": content},
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
