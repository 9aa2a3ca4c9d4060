"""OpenAI Chat Completions (`POST {base}/chat/completions`), the format the Hugging Face router
and local OpenAI-compatible servers also speak.

Owns: the OpenAI request body (system prompt as the first `system` message, the
provider's max-tokens field), the `chat.completion` reply (text, finish reason, usage) and the
`x-ratelimit-*` headers (Go-style reset durations). Wire reference:
https://platform.openai.com/docs/api-reference/chat. Must not: do I/O (the base class sends).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import Field

from schemas.config import LLMProvider
from schemas.job import Usage
from workers.providers.base import ProviderAdapter, ProviderReply, ProviderRequest, RateLimitInfo
from workers.providers.http import go_duration_s, header_int
from workers.providers.wire import Count, Meta, Tokens, WireModel


def openai_messages(req: ProviderRequest) -> list[dict[str, str]]:
    """OpenAI keeps the system prompt in the message list, first."""
    messages = [{"role": "system", "content": req.system}] if req.system else []
    messages.extend({"role": m.role, "content": m.content} for m in req.messages)
    return messages


def openai_rate_limits(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """`x-ratelimit-*` headers (OpenAI, and servers that copy them)."""
    if "x-ratelimit-limit-requests" not in headers and "x-ratelimit-limit-tokens" not in headers:
        return None
    return RateLimitInfo(
        limit_requests=header_int(headers, "x-ratelimit-limit-requests"),
        remaining_requests=header_int(headers, "x-ratelimit-remaining-requests"),
        reset_requests_s=go_duration_s(headers.get("x-ratelimit-reset-requests")),
        limit_tokens=header_int(headers, "x-ratelimit-limit-tokens"),
        remaining_tokens=header_int(headers, "x-ratelimit-remaining-tokens"),
        reset_tokens_s=go_duration_s(headers.get("x-ratelimit-reset-tokens")),
    )


def message_text(content: Any) -> str:
    """`message.content` is a string, null (refusals, tool calls) or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and "text" in p)
    raise TypeError(f"message.content is {type(content).__name__}")


class OpenAIUsage(WireModel):
    prompt_tokens: Tokens
    completion_tokens: Count = 0


class OpenAIMessage(WireModel):
    content: Any = None  # see message_text


class OpenAIChoice(WireModel):
    message: OpenAIMessage
    finish_reason: Any = None


class ChatCompletion(WireModel):
    """The parts of a `chat.completion` llmq reads."""

    choices: list[OpenAIChoice] = Field(min_length=1)
    usage: Any = None
    id: Meta = None
    model: Meta = None


def openai_usage(usage: Any) -> Usage:
    """Usage from the reply's `usage` object; estimated when absent or without prompt_tokens."""
    if not isinstance(usage, dict) or "prompt_tokens" not in usage:
        return Usage(estimated=True)
    counts = OpenAIUsage.model_validate(usage)
    return Usage(prompt_tokens=counts.prompt_tokens, completion_tokens=counts.completion_tokens)


class OpenAIAdapter(ProviderAdapter):
    """api.openai.com; subclasses reuse the body and reply for compatible servers."""

    name: ClassVar[str] = LLMProvider.OPENAI
    env_keys: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    genai_prices_id: ClassVar[str | None] = "openai"
    simulator_dialect: ClassVar[str] = "openai"
    # `max_tokens` is deprecated by OpenAI and rejected by o-series models.
    max_tokens_field: ClassVar[str] = "max_completion_tokens"

    def __init__(self, target: Any, client: httpx.Client) -> None:
        super().__init__(target, client)
        self.url = self.base_url + self.chat_path

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        if self.target.provider.organization:
            headers["openai-organization"] = self.target.provider.organization
        return headers

    def build_body(self, req: ProviderRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": req.model_id,
            "messages": openai_messages(req),
            self.max_tokens_field: req.max_tokens,
        }
        if req.temperature is not None:
            body["temperature"] = req.temperature
        return body

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        return self.post(self.url, self.build_body(req))

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        data = ChatCompletion.model_validate(resp.json())
        choice = data.choices[0]
        return ProviderReply(
            text=message_text(choice.message.content),
            finish_reason=self.finish(choice.finish_reason),
            usage=openai_usage(data.usage),
            request_id=self.request_id(resp) or data.id,
            model=data.model,
            rate_limits=self.rate_limits(resp.headers),
        )

    def rate_limits(self, headers: httpx.Headers) -> RateLimitInfo | None:
        return openai_rate_limits(headers)
