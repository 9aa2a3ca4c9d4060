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

from schemas.config import LLMModelConfig, LLMProvider
from schemas.job import Usage
from schemas.request import Feature, ToolCall
from workers.providers.anthropic_features import (
    JSON_TOOL,
    alternating,
    feature_fields,
    has_native_json,
    rejects_top_p_with_temperature,
)
from workers.providers.base import ProviderAdapter, ProviderReply, ProviderRequest, RateLimitInfo
from workers.providers.batch_anthropic import AnthropicBatchWire
from workers.providers.features import (
    args_text,
    finish_with_calls,
    refusals,
    split_system,
    tool_call,
)
from workers.providers.http import header_int, until_s
from workers.providers.usage_reports import MessagesUsageReport
from workers.providers.wire import Count, Meta, WireModel

API_VERSION = "2023-06-01"  # the stable version; newer SDK pins change parameter sets
# Every Claude: JSON via the tool trick where native output is missing, so JSON + tools too.
# Whitespace-only stop sequences are a 400 there: refused at submit, not at the worker.
CAPABILITIES = frozenset(Feature) - {Feature.SEED, Feature.PENALTIES, Feature.BLANK_STOP}


class AnthropicUsage(WireModel):
    input_tokens: Count
    cache_creation_input_tokens: Count = 0
    cache_read_input_tokens: Count = 0
    output_tokens: Count = 0


class ContentBlock(WireModel):
    type: Any = None
    text: Any = None
    id: Any = None  # tool_use
    name: Any = None
    input: Any = None  # an object


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
    # input_tokens excludes cache reads and writes; the prompt is all three. Thinking is
    # inside output_tokens and not reported apart, so reasoning_tokens stays 0.
    prompt = (
        counts.input_tokens + counts.cache_creation_input_tokens + counts.cache_read_input_tokens
    )
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=counts.output_tokens,
        cached_tokens=counts.cache_read_input_tokens,
        cache_write_tokens=counts.cache_creation_input_tokens,
    )


class AnthropicAdapter(AnthropicBatchWire, ProviderAdapter):
    name: ClassVar[str] = LLMProvider.ANTHROPIC
    batch_api: ClassVar[str | None] = "message_batches"  # /v1/messages/batches, half price
    env_keys: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    genai_prices_id: ClassVar[str | None] = "anthropic"
    simulator_dialect: ClassVar[str] = "anthropic"
    # `llmq reconcile`: the Admin API's messages usage report and cost report
    usage_report: ClassVar[Any] = MessagesUsageReport({"anthropic-version": API_VERSION})
    admin_env_keys: ClassVar[tuple[str, ...]] = ("ANTHROPIC_ADMIN_KEY",)
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

    capabilities: ClassVar[frozenset[Feature]] = CAPABILITIES

    def __init__(self, target: Any, client: httpx.Client) -> None:
        super().__init__(target, client)
        self.url = self.base_url + self.chat_path

    @classmethod
    def capabilities_for(cls, deployment: LLMModelConfig) -> frozenset[Feature]:
        """Without top_p on models that reject it next to temperature, which is always sent
        (a deployment's default): the API would answer 400."""
        if rejects_top_p_with_temperature(deployment.model_id or deployment.name):
            return cls.capabilities - {Feature.TOP_P}
        return cls.capabilities

    def native_json(self, model_id: str) -> bool:
        """Native `output_config.format` for json_schema: known models (Sonnet/Opus 4.5+,
        Haiku 4.5), unless the deployment sets `json_with_tools: false` (e.g. a gateway
        without it: the tool trick is used); `json_with_tools: true` turns it on for others."""
        override = (self.target.deployment.capabilities or {}).get(Feature.JSON_WITH_TOOLS)
        return has_native_json(model_id) if override is None else override

    def auth_headers(self) -> dict[str, str]:
        key = self.key()
        headers = {"anthropic-version": API_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        return self.post(self.url, self.build_body(req))

    def build_body(self, req: ProviderRequest) -> dict[str, Any]:
        """The Messages body (also each request of a message batch)."""
        self.require(req)
        system, rest = split_system(req)
        with refusals(self):
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
            feature_fields(req.features, rest, body, self.native_json(req.model_id))
        return body

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        data = AnthropicMessage.model_validate(resp.json())
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in data.content:
            if block.type == "text":
                if not isinstance(block.text, str):
                    raise TypeError("a text block without text")
                texts.append(block.text)
            elif block.type == "tool_use" and block.name == JSON_TOOL:
                texts.append(args_text(block.input))  # JSON output by the tool trick
            elif block.type == "tool_use":
                calls.append(tool_call(len(calls), block.id, block.name, block.input))
        text = "".join(texts)
        refused = data.stop_reason == "refusal"
        return ProviderReply(
            text=text,
            finish_reason=finish_with_calls(self.finish(data.stop_reason), tuple(calls)),
            usage=anthropic_usage(data.usage),
            tool_calls=tuple(calls),
            refusal=(text or "refused (stop_reason: refusal)") if refused else None,
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
