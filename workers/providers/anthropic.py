"""Anthropic Messages API (`POST {base}/v1/messages`).

Owns: the Messages body (top-level `system`, required `max_tokens`, `x-api-key` +
`anthropic-version: 2023-06-01`), the `message` reply (text blocks, `stop_reason`, usage with
cache reads/writes counted as prompt tokens), `anthropic-ratelimit-*` headers (RFC 3339
resets) and Anthropic's error quirks (529 overloaded is status-classified as unavailable).
Wire reference: https://docs.claude.com/en/api/messages and /en/api/errors.
Must not: do I/O (the base class sends).
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from schemas.config import LLMProvider
from schemas.job import ChatMessage, Usage
from workers.providers.base import (
    ProviderAdapter,
    ProviderReply,
    ProviderRequest,
    RateLimitInfo,
    split_system,
)
from workers.providers.http import header_int, until_s

API_VERSION = "2023-06-01"  # the stable version; newer SDK pins change parameter sets


def alternating(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """Anthropic requires user/assistant turns to alternate: join consecutive same-role
    messages instead of letting the API reject them."""
    out: list[dict[str, str]] = []
    for m in messages:
        if out and out[-1]["role"] == m.role:
            out[-1]["content"] += "\n\n" + m.content
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def anthropic_usage(data: dict[str, Any]) -> Usage:
    usage = data.get("usage")
    if not isinstance(usage, dict) or "input_tokens" not in usage:
        return Usage(estimated=True)
    # input_tokens excludes cache reads and writes; the prompt is all three.
    prompt = sum(
        int(usage.get(k) or 0)
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(prompt_tokens=prompt, completion_tokens=int(usage.get("output_tokens") or 0))


class AnthropicAdapter(ProviderAdapter):
    name: ClassVar[LLMProvider] = LLMProvider.ANTHROPIC
    env_key: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    chat_path: ClassVar[str] = "/v1/messages"
    request_id_header: ClassVar[str | None] = "request-id"
    finish_reasons: ClassVar[dict[str, str]] = {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "max_tokens": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
        "model_context_window_exceeded": "length",
    }

    def __init__(self, target: Any, client: httpx.Client) -> None:
        super().__init__(target, client)
        self.url = self.base_url + self.chat_path

    def auth_headers(self) -> dict[str, str]:
        key = self.key()
        headers = {"anthropic-version": API_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        system, rest = split_system(req)
        body: dict[str, Any] = {
            "model": req.model_id,
            "max_tokens": req.max_tokens,
            "messages": alternating(rest),
        }
        if system:
            body["system"] = system
        if req.temperature is not None:
            # Anthropic's range is 0..1 where OpenAI's is 0..2: clamp rather than be rejected.
            body["temperature"] = min(req.temperature, 1.0)
        return self.post(self.url, body)

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        data = resp.json()
        blocks = data["content"]
        text = "".join(b["text"] for b in blocks if b.get("type") == "text")
        return ProviderReply(
            text=text,
            finish_reason=self.finish(data.get("stop_reason")),
            usage=anthropic_usage(data),
            request_id=self.request_id(resp) or data.get("id"),
            model=data.get("model"),
            rate_limits=self.rate_limits(resp.headers),
        )

    def rate_limits(self, headers: httpx.Headers) -> RateLimitInfo | None:
        prefix = "anthropic-ratelimit-"
        if prefix + "requests-limit" not in headers and prefix + "tokens-limit" not in headers:
            return None
        return RateLimitInfo(
            limit_requests=header_int(headers, prefix + "requests-limit"),
            remaining_requests=header_int(headers, prefix + "requests-remaining"),
            reset_requests_s=until_s(headers.get(prefix + "requests-reset")),
            limit_tokens=header_int(headers, prefix + "tokens-limit"),
            remaining_tokens=header_int(headers, prefix + "tokens-remaining"),
            reset_tokens_s=until_s(headers.get(prefix + "tokens-reset")),
        )
