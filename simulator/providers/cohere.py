"""Cohere Chat API v2 (``POST /v2/chat``) wire format.

This module owns Cohere's request checks (Bearer key, required ``model`` and ``messages``, roles
system/user/assistant/tool, ``max_tokens``), the reply (``finish_reason`` ``COMPLETE`` or
``MAX_TOKENS``, ``message.content[{type: text}]``, ``usage.billed_units`` and ``usage.tokens``)
and the bare ``{"message": "..."}`` error envelope (``invalid request: ...``,
``too many tokens: ...``, ``invalid api token``). Cohere documents no rate-limit headers, so
none are sent (429s still carry ``retry-after``/``retry-after-ms``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from simulator.providers.base import (
    Dialect,
    Rendered,
    SimError,
    content_text,
    dumps,
    invalid,
    optional_max_tokens,
    require_list,
    require_str,
)
from simulator.textgen import ChatRequest, Completion

ROLES = frozenset({"system", "user", "assistant", "tool"})


class CohereDialect(Dialect):
    """api.cohere.com ``/v2/chat``."""

    name: ClassVar[str] = "cohere"
    base_path: ClassVar[str] = ""
    chat_path: ClassVar[str] = "/v2/chat"
    messages: ClassVar[dict[str, str]] = {
        "auth_missing": "no api key supplied",
        "auth_bad": "invalid api token",
        "not_found": (
            "model '{model}' not found, make sure the correct model ID was used and that you "
            "have access to the model."
        ),
        "context": (
            "too many tokens: total number of tokens in the prompt cannot exceed {window} - "
            "received {total}. Try using a shorter prompt, or enabling prompt truncating."
        ),
        "rate_limit": (
            "You are past the per minute request limit, please wait and try again later."
        ),
        "server": "internal server error, this has been reported to our developers",
        "unavailable": "service unavailable, please try again later",
        "timeout": "request timed out",
    }

    def parse(self, body: Any, request: web.Request) -> ChatRequest:
        if not isinstance(body, dict):
            raise invalid("invalid request: body must be a JSON object")
        try:
            model = require_str(body, "model")
            messages = require_list(body, "messages")
        except SimError as err:
            raise invalid("invalid request: " + err.message) from None
        texts: list[str] = []
        last_user = ""
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise invalid(f"invalid request: messages[{i}] must be an object")
            role = message.get("role")
            if role not in ROLES:
                raise invalid(
                    f"invalid request: messages[{i}].role must be one of "
                    "'system', 'user', 'assistant', 'tool'"
                )
            text = content_text(message.get("content"), f"messages[{i}]")
            texts.append(text)
            if role == "user":
                last_user = text
        max_tokens = optional_max_tokens(body.get("max_tokens"), "max_tokens")
        if body.get("stream"):
            raise invalid("invalid request: streaming is not implemented by the simulator")
        return ChatRequest(model, texts, len(messages), last_user, max_tokens)

    def render(self, chat: ChatRequest, done: Completion, request_id: str) -> Rendered:
        body = {
            "id": request_id,
            "finish_reason": "MAX_TOKENS" if done.truncated else "COMPLETE",
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": done.text}],
            },
            "usage": {
                "billed_units": {
                    "input_tokens": done.prompt_tokens,
                    "output_tokens": done.completion_tokens,
                },
                "tokens": {
                    "input_tokens": done.prompt_tokens,
                    "output_tokens": done.completion_tokens,
                },
            },
        }
        return Rendered(200, dumps(body))

    def error_body(self, err: SimError, message: str, request_id: str) -> Any:
        if err.kind == "invalid" and not message.startswith("invalid request"):
            message = "invalid request: " + message
        return {"message": message}
