"""Anthropic Messages API (``POST /v1/messages``) wire format.

This module owns Anthropic's request checks (``x-api-key`` or Bearer token, required
``anthropic-version`` header, required ``max_tokens``, no ``system`` role inside ``messages``,
roles alternating user/assistant starting with user), the ``message`` reply with
``usage.input_tokens``/``output_tokens``, the ``{"type": "error", "error": {...}, "request_id"}``
envelope, 529 ``overloaded_error``, the ``request-id`` header and the
``anthropic-ratelimit-*`` headers (resets as RFC 3339 timestamps). The reply carries ``text``
and ``tool_use`` blocks (object ``input``) and ``stop_reason`` end_turn / max_tokens /
stop_sequence (with ``stop_sequence``) / tool_use / refusal; features are read by
``anthropic_features``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from simulator.providers.anthropic_features import (
    check_top_level,
    parse_output,
    parse_sampling,
    parse_tools,
    walk_content,
)
from simulator.providers.base import (
    Dialect,
    RateSnapshot,
    Rendered,
    SimError,
    bearer_key,
    content_text,
    dumps,
    invalid,
    optional_max_tokens,
    require_list,
    require_str,
)
from simulator.providers.usage_api import cost_report, messages_usage, rfc3339_window
from simulator.textgen import ChatRequest, Completion
from simulator.tooling import Features

_STOP_REASONS = {
    "tool": "tool_use",
    "refusal": "refusal",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "stop": "end_turn",
}

_TYPES: dict[str, str] = {
    "auth_missing": "authentication_error",
    "auth_bad": "authentication_error",
    "invalid": "invalid_request_error",
    "context": "invalid_request_error",
    "not_found": "not_found_error",
    "rate_limit": "rate_limit_error",
    "server": "api_error",
    "unavailable": "api_error",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
}


def rfc3339(unix: float) -> str:
    """``2026-01-02T03:04:05Z`` (second precision, rounded up, UTC)."""
    return datetime.fromtimestamp(math.ceil(unix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _system_text(system: Any) -> str | None:
    if system is None:
        return None
    if isinstance(system, str | list):
        return content_text(system, "system")
    raise invalid("system: Input should be a valid string or a list of text blocks")


def _check_roles(messages: list[Any]) -> None:
    expected = "user"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role == "system":
            raise invalid(
                'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if role != expected:
            if i == 0:
                raise invalid('messages: first message must use the "user" role')
            raise invalid('messages: roles must alternate between "user" and "assistant"')
        expected = "assistant" if role == "user" else "user"


class AnthropicDialect(Dialect):
    """api.anthropic.com ``/v1/messages``."""

    name: ClassVar[str] = "anthropic"
    usage_classes: ClassVar[frozenset[str]] = frozenset({"cached", "cache_write"})
    report_routes: ClassVar[Mapping[str, tuple[Any, Any]]] = {
        "/v1/organizations/usage_report/messages": (rfc3339_window, messages_usage),
        "/v1/organizations/cost_report": (rfc3339_window, cost_report),
    }
    base_path: ClassVar[str] = ""
    chat_path: ClassVar[str] = "/v1/messages"
    rate_limit_headers: ClassVar[bool] = True
    request_id_header: ClassVar[str | None] = "request-id"
    overloaded_status: ClassVar[int] = 529
    messages: ClassVar[dict[str, str]] = {
        "auth_missing": "x-api-key header is required",
        "auth_bad": "invalid x-api-key",
        "not_found": "model: {model}",
        "context": (
            "prompt is too long: {prompt_tokens} tokens + {max_tokens} max_tokens > "
            "{window} maximum"
        ),
        "rate_limit": (
            "This request would exceed the rate limit for your organization of {limit} {what}. "
            "Please try again in {wait}."
        ),
        "server": "Internal server error",
        "unavailable": "Service unavailable",
        "overloaded": "Overloaded",
        "timeout": "Request timed out",
    }

    def check_auth(self, request: web.Request) -> None:
        key = request.headers.get("x-api-key") or bearer_key(request)
        self.judge_key(key)
        if not request.headers.get("anthropic-version"):
            raise invalid("anthropic-version: header is required")

    def parse(self, body: Any, request: web.Request) -> ChatRequest:
        if not isinstance(body, dict):
            raise invalid("Request body must be a JSON object")
        check_top_level(body, request.headers.get("anthropic-beta", ""))
        model = require_str(body, "model")
        if body.get("max_tokens") is None:
            raise invalid("max_tokens: Field required")
        max_tokens = optional_max_tokens(body.get("max_tokens"), "max_tokens")
        messages = require_list(body, "messages")
        _check_roles(messages)
        features = Features()
        parse_tools(body, features)
        parse_output(body, features)
        parse_sampling(body, model, features)
        texts: list[str] = []
        n_messages = len(messages)
        system = _system_text(body.get("system"))
        if system is not None:
            texts.append(system)
            n_messages += 1
        last_user = ""
        open_ids: set[str] = set()
        uses_tools = False
        for i, message in enumerate(messages):
            role = message["role"]
            where = f"messages.{i}.content"
            text, ids, answered = walk_content(
                message.get("content"), role, where, features, open_ids
            )
            open_ids = set(ids)
            uses_tools = uses_tools or bool(ids) or answered
            features.after_tool = answered
            texts.append(text)
            if role == "user" and not answered:
                last_user = text
        if uses_tools and not features.tools:
            raise invalid(
                "Requests which include `tool_use` or `tool_result` blocks must define tools."
            )
        if body.get("stream"):
            raise invalid("stream: streaming is not implemented by the llmq provider simulator")
        return ChatRequest(model, texts, n_messages, last_user, max_tokens, features=features)

    def render(self, chat: ChatRequest, done: Completion, request_id: str) -> Rendered:
        content: list[dict[str, Any]] = []
        if done.text or not done.tool_calls:
            content.append({"type": "text", "text": done.text})
        for call in done.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + call.id,
                    "name": call.name,
                    "input": call.arguments,
                }
            )
        body = {
            "id": "msg_" + request_id,
            "type": "message",
            "role": "assistant",
            "model": chat.model,
            "content": content,
            "stop_reason": _STOP_REASONS[done.finish],
            "stop_sequence": done.stop_hit,
            "usage": {
                # input_tokens excludes cache reads and writes; thinking is inside output
                "input_tokens": done.prompt_tokens - done.cached_tokens - done.cache_write_tokens,
                "output_tokens": done.completion_tokens,
                "cache_creation_input_tokens": done.cache_write_tokens,
                "cache_read_input_tokens": done.cached_tokens,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": done.cache_write_tokens,
                    "ephemeral_1h_input_tokens": 0,
                },
                "service_tier": "standard",
            },
        }
        return Rendered(200, dumps(body))

    def error_body(self, err: SimError, message: str, request_id: str) -> Any:
        return {
            "type": "error",
            "error": {"type": _TYPES.get(err.kind, "api_error"), "message": message},
            "request_id": "req_" + request_id,
        }

    def rate_headers(self, snap: RateSnapshot, now: float) -> dict[str, str]:
        token_remaining = snap.remaining_tokens // 1000 * 1000  # rounded (down) to thousands
        return {
            "anthropic-ratelimit-requests-limit": str(snap.limit_requests),
            "anthropic-ratelimit-requests-remaining": str(snap.remaining_requests),
            "anthropic-ratelimit-requests-reset": rfc3339(now + snap.reset_requests_s),
            "anthropic-ratelimit-tokens-limit": str(snap.limit_tokens),
            "anthropic-ratelimit-tokens-remaining": str(token_remaining),
            "anthropic-ratelimit-tokens-reset": rfc3339(now + snap.reset_tokens_s),
        }
