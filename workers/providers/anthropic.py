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
from workers.providers.wire import Count, Meta, WireModel

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


class AnthropicUsage(WireModel):
    input_tokens: Count
    cache_creation_input_tokens: Count = 0
    cache_read_input_tokens: Count = 0
    output_tokens: Count = 0


class ContentBlock(WireModel):
    type: Any = None
    text: Any = None


class AnthropicMessage(WireModel):
    """The parts of a Messages API `message` llmq reads."""

    content: list[ContentBlock]
    stop_reason: Any = None
    usage: Any = None
    id: Meta = None
    model: Meta = None


def anthropic_usage(usage: Any) -> Usage:
    """Usage from the reply's `usage`; estimated when absent or without input_tokens."""
    if not isinstance(usage, dict) or "input_tokens" not in usage:
        return Usage(estimated=True)
    counts = AnthropicUsage.model_validate(usage)
    # input_tokens excludes cache reads and writes; the prompt is all three.
    prompt = (
        counts.input_tokens + counts.cache_creation_input_tokens + counts.cache_read_input_tokens
    )
    return Usage(prompt_tokens=prompt, completion_tokens=counts.output_tokens)


class AnthropicAdapter(ProviderAdapter):
    name: ClassVar[str] = LLMProvider.ANTHROPIC
    env_keys: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    genai_prices_id: ClassVar[str | None] = "anthropic"
    simulator_dialect: ClassVar[str] = "anthropic"
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
        data = AnthropicMessage.model_validate(resp.json())
        texts = [b.text for b in data.content if b.type == "text"]
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("a text block without text")
        return ProviderReply(
            text="".join(texts),
            finish_reason=self.finish(data.stop_reason),
            usage=anthropic_usage(data.usage),
            request_id=self.request_id(resp) or data.id,
            model=data.model,
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
