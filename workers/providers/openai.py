"""OpenAI Chat Completions (`POST {base}/chat/completions`), the format the Hugging Face router
and local OpenAI-compatible servers also speak.

Owns: the OpenAI request body (system prompt as the first `system` message, the
provider's max-tokens field, content parts, tool calls and results, and every request feature
passed through as OpenAI names it), the `chat.completion` reply (text, tool calls, refusal,
finish reason, usage) and the `x-ratelimit-*` headers (Go-style reset durations). These
functions are reused by the adapters whose wire format is OpenAI's or close to it. Wire
reference: https://platform.openai.com/docs/api-reference/chat. Must not: do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import Field

from schemas.config import LLMProvider
from schemas.job import ChatMessage, Usage
from schemas.request import (
    Feature,
    Features,
    ImagePart,
    NamedToolChoice,
    TextPart,
    ToolCall,
    ToolSpec,
)
from workers.providers.base import ProviderReply, ProviderRequest, RateLimitInfo
from workers.providers.batch_openai import OpenAIBatchWire
from workers.providers.embed_wire import OpenAIEmbeds
from workers.providers.features import finish_with_calls, tool_call
from workers.providers.http import go_duration_s, header_int
from workers.providers.usage_reports import BucketedUsageReport
from workers.providers.wire import Count, Meta, Tokens, WireModel

ALL_FEATURES = frozenset(Feature)


def openai_part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    return {"type": "image_url", "image_url": part.image_url.model_dump(exclude_none=True)}


def openai_message(m: ChatMessage) -> dict[str, Any]:
    """One turn in OpenAI's form: content string or parts, tool calls, the answered call id."""
    out: dict[str, Any] = {"role": m.role}
    if m.content is None or isinstance(m.content, str):
        out["content"] = m.content
    else:
        out["content"] = [openai_part(p) for p in m.content]
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def openai_messages(req: ProviderRequest) -> list[dict[str, Any]]:
    """OpenAI keeps the system prompt in the message list, first."""
    messages: list[dict[str, Any]] = (
        [{"role": "system", "content": req.system}] if req.system else []
    )
    messages.extend(openai_message(m) for m in req.messages)
    return messages


def openai_tool(tool: ToolSpec) -> dict[str, Any]:
    return {"type": "function", "function": tool.function.model_dump(exclude_none=True)}


def openai_features(features: Features) -> dict[str, Any]:
    """The request features as OpenAI body parameters, exactly as asked (only those asked)."""
    out: dict[str, Any] = {}
    fmt = features.response_format
    if fmt is not None:
        out["response_format"] = fmt.model_dump(by_alias=True, exclude_none=True)
    if features.tools:
        out["tools"] = [openai_tool(t) for t in features.tools]
    choice = features.tool_choice
    if isinstance(choice, NamedToolChoice):
        out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif choice is not None:
        out["tool_choice"] = choice
    if features.parallel_tool_calls is not None:
        out["parallel_tool_calls"] = features.parallel_tool_calls
    sampling = features.sampling.model_dump(exclude_none=True)
    if "stop" in sampling:
        sampling["stop"] = list(sampling["stop"])
    out.update(sampling)
    return out


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


class PromptDetails(WireModel):
    cached_tokens: Count = 0


class CompletionDetails(WireModel):
    reasoning_tokens: Count = 0


class OpenAIUsage(WireModel):
    prompt_tokens: Tokens
    completion_tokens: Count = 0
    # Both inside their parents: cached ⊂ prompt, reasoning ⊂ completion. Null details
    # (some compatible servers) count as none.
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None


class OpenAIFunction(WireModel):
    name: Any = None
    arguments: Any = None  # JSON text; an object from some compatible servers


class OpenAIToolCall(WireModel):
    id: Any = None
    function: OpenAIFunction


class OpenAIMessage(WireModel):
    content: Any = None  # see message_text
    refusal: Meta = None
    tool_calls: list[OpenAIToolCall] | None = None

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            tool_call(i, c.id, c.function.name, c.function.arguments)
            for i, c in enumerate(self.tool_calls or ())
        )


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
    prompt, completion = counts.prompt_tokens_details, counts.completion_tokens_details
    return Usage(
        prompt_tokens=counts.prompt_tokens,
        completion_tokens=counts.completion_tokens,
        cached_tokens=prompt.cached_tokens if prompt else 0,
        reasoning_tokens=completion.reasoning_tokens if completion else 0,
    )


class OpenAIAdapter(OpenAIBatchWire, OpenAIEmbeds):
    """api.openai.com; subclasses reuse the body and reply for compatible servers."""

    name: ClassVar[str] = LLMProvider.OPENAI
    env_keys: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    genai_prices_id: ClassVar[str | None] = "openai"
    simulator_dialect: ClassVar[str] = "openai"
    # `llmq reconcile`: the organization usage and costs API, behind an admin key
    usage_report: ClassVar[Any] = BucketedUsageReport()
    admin_env_keys: ClassVar[tuple[str, ...]] = ("OPENAI_ADMIN_KEY",)
    batch_api: ClassVar[str | None] = "batches"  # /v1/files + /v1/batches, half price
    # `max_tokens` is deprecated by OpenAI and rejected by o-series models.
    max_tokens_field: ClassVar[str] = "max_completion_tokens"
    capabilities: ClassVar[frozenset[Feature]] = ALL_FEATURES  # the surface is OpenAI's own
    # OpenAI answers json_object with 400 when no message says "json" (trap 8): say it first.
    json_object_needs_word: ClassVar[bool] = True

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
        body.update(openai_features(req.features))
        return body

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        self.require(req)
        fmt = req.features.response_format
        if self.json_object_needs_word and fmt is not None and fmt.type == "json_object":
            texts = [req.system or "", *(m.text for m in req.messages)]
            if not any("json" in t.lower() for t in texts):
                raise self.refuse("json_object needs the word 'json' in the messages")
        return self.post(self.url, self.build_body(req))

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        data = ChatCompletion.model_validate(resp.json())
        choice = data.choices[0]
        calls = choice.message.calls()
        return ProviderReply(
            text=message_text(choice.message.content),
            finish_reason=finish_with_calls(self.finish(choice.finish_reason), calls),
            usage=openai_usage(data.usage),
            tool_calls=calls,
            refusal=choice.message.refusal or None,
            request_id=self.request_id(resp) or data.id,
            model=data.model,
            rate_limits=self.rate_limits(resp.headers),
        )

    def rate_limits(self, headers: httpx.Headers) -> RateLimitInfo | None:
        return openai_rate_limits(headers)
