"""Google Gemini, Generative Language API (`POST {base}/v1beta/models/{model}:generateContent`).

Owns: the camelCase body (`contents` with roles user/model, top-level `systemInstruction`,
`generationConfig.maxOutputTokens`), `x-goog-api-key` auth, the `GenerateContentResponse`
reply (text parts, `finishReason`, `usageMetadata`, blocked prompts) and Google's error quirks:
a bad key is a 400 `API_KEY_INVALID`, billing problems are `FAILED_PRECONDITION`, and a 429
says when to retry only in `details[].retryDelay` (no Retry-After header).
Wire reference: https://ai.google.dev/api/generate-content and
https://ai.google.dev/gemini-api/docs/troubleshooting. Must not: do I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import Field

from core.errors import AuthFailed, ContentFiltered, InsufficientCredit, LLMProviderError
from schemas.config import LLMModelConfig, LLMProvider
from schemas.job import Usage
from schemas.request import Feature, ToolCall
from workers.providers.base import ErrorDetails, ProviderReply, ProviderRequest
from workers.providers.batch_gemini import GeminiBatchWire
from workers.providers.embed_wire import BatchEmbedContents
from workers.providers.features import finish_with_calls, refusals, split_system, tool_call
from workers.providers.google_features import (
    contents,
    generation_fields,
    is_gemini_3,
    tool_fields,
)
from workers.providers.http import go_duration_s, retry_after_s
from workers.providers.wire import Count, Meta, Tokens, WireModel

# Not: image URLs (inline data only), one call at a time (no such switch); JSON output with
# function calling only from Gemini 3 (2.x: "Function calling with a response mime type
# 'application/json' is unsupported"); penalties not on Gemini 3 (LiteLLM drops them there).
CAPABILITIES = frozenset(Feature) - {Feature.IMAGE_URL, Feature.SERIAL_TOOL_CALLS}


class UsageMetadata(WireModel):
    promptTokenCount: Tokens  # noqa: N815 - Google's field names
    toolUsePromptTokenCount: Count = 0  # noqa: N815
    candidatesTokenCount: Count = 0  # noqa: N815
    thoughtsTokenCount: Count = 0  # noqa: N815
    cachedContentTokenCount: Count = 0  # noqa: N815 - inside promptTokenCount


class FunctionCall(WireModel):
    id: Any = None
    name: Any = None
    args: Any = None  # an object


class Part(WireModel):
    text: Any = None
    thought: Any = None  # a thought summary, not the answer
    functionCall: FunctionCall | None = None  # noqa: N815


class Content(WireModel):
    parts: list[Part] | None = None


class Candidate(WireModel):
    content: Content | None = None
    finishReason: Any = None  # noqa: N815


class PromptFeedback(WireModel):
    blockReason: Any = None  # noqa: N815


class GenerateContentResponse(WireModel):
    """The parts of a `GenerateContentResponse` llmq reads."""

    candidates: list[Candidate] | None = None
    promptFeedback: PromptFeedback | None = None  # noqa: N815
    usageMetadata: Any = None  # noqa: N815
    responseId: Meta = None  # noqa: N815
    modelVersion: Meta = None  # noqa: N815


def google_usage(meta: Any) -> Usage:
    """Usage from `usageMetadata`; estimated when absent or without promptTokenCount."""
    if not isinstance(meta, dict) or "promptTokenCount" not in meta:
        return Usage(estimated=True)
    counts = UsageMetadata.model_validate(meta)
    prompt = counts.promptTokenCount + counts.toolUsePromptTokenCount
    # Thinking tokens are billed as output but not included in candidatesTokenCount.
    completion = counts.candidatesTokenCount + counts.thoughtsTokenCount
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=counts.cachedContentTokenCount,
        reasoning_tokens=counts.thoughtsTokenCount,
    )


class ErrorDetail(WireModel):
    type: Any = Field(default=None, alias="@type")
    reason: Any = None
    retryDelay: Any = None  # noqa: N815


def _details(body: Any) -> list[ErrorDetail]:
    """The `error.details[]` objects of an error body (anything else is ignored)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        details = body["error"].get("details")
        if isinstance(details, list):
            return [ErrorDetail.model_validate(d) for d in details if isinstance(d, dict)]
    return []


class GoogleAdapter(GeminiBatchWire, BatchEmbedContents):
    name: ClassVar[str] = LLMProvider.GOOGLE
    batch_api: ClassVar[str | None] = "batch_generate_content"  # :batchGenerateContent, half
    env_keys: ClassVar[tuple[str, ...]] = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    default_base_url: ClassVar[str] = "https://generativelanguage.googleapis.com"
    genai_prices_id: ClassVar[str | None] = "google"
    simulator_dialect: ClassVar[str] = "google"
    chat_path: ClassVar[str] = "/v1beta/models/{model}:generateContent"
    request_id_header: ClassVar[str | None] = None  # the id is `responseId` in the body
    finish_reasons: ClassVar[dict[str, str]] = {
        "STOP": "stop",
        "MAX_TOKENS": "length",
        "SAFETY": "content_filter",
        "RECITATION": "content_filter",
        "BLOCKLIST": "content_filter",
        "PROHIBITED_CONTENT": "content_filter",
        "SPII": "content_filter",
        "IMAGE_SAFETY": "content_filter",
    }

    capabilities: ClassVar[frozenset[Feature]] = CAPABILITIES

    def __init__(self, target: Any, client: httpx.Client) -> None:
        super().__init__(target, client)
        self.url = self.url_for(self.model_id)

    @classmethod
    def capabilities_for(cls, deployment: LLMModelConfig) -> frozenset[Feature]:
        if is_gemini_3(deployment.model_id or deployment.name):
            return cls.capabilities - {Feature.PENALTIES}
        return cls.capabilities - {Feature.JSON_WITH_TOOLS}

    def url_for(self, model_id: str) -> str:
        model = model_id.removeprefix("models/")
        return self.base_url + self.chat_path.format(model=quote(model, safe="-._~"))

    def auth_headers(self) -> dict[str, str]:
        key = self.key()
        return {"x-goog-api-key": key} if key else {}

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        url = self.url if req.model_id == self.model_id else self.url_for(req.model_id)
        return self.post(url, self.build_body(req))

    def build_body(self, req: ProviderRequest) -> dict[str, Any]:
        """The GenerateContentRequest (also each request of a batch)."""
        self.require(req)
        system, rest = split_system(req)
        with refusals(self):
            body: dict[str, Any] = {"contents": contents(rest, req.model_id)}
            if system:
                body["systemInstruction"] = {"parts": [{"text": system}]}
            config: dict[str, Any] = {"maxOutputTokens": req.max_tokens}
            if req.temperature is not None:
                config["temperature"] = req.temperature
            generation_fields(req.features, config)
            body["generationConfig"] = config
            body.update(tool_fields(req.features))
        return body

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        data = GenerateContentResponse.model_validate(resp.json())
        if not data.candidates:
            block = data.promptFeedback.blockReason if data.promptFeedback else None
            if block:
                raise ContentFiltered(
                    f"google: prompt blocked ({block})",
                    **self._fields,
                    status=resp.status_code,
                    request_id=data.responseId,
                )
            raise KeyError("candidates")
        first = data.candidates[0]
        parts = (first.content.parts if first.content else None) or []
        text = "".join(p.text for p in parts if isinstance(p.text, str) and p.thought is not True)
        # Calls are found by their presence: the finish reason is STOP either way.
        calls: list[ToolCall] = []
        for p in parts:
            if p.functionCall is not None:
                fc = p.functionCall
                calls.append(tool_call(len(calls), fc.id, fc.name, fc.args))
        return ProviderReply(
            text=text,
            finish_reason=finish_with_calls(self.finish(first.finishReason), tuple(calls)),
            usage=google_usage(data.usageMetadata),
            tool_calls=tuple(calls),
            request_id=data.responseId,
            model=data.modelVersion,
        )

    def refine(
        self, cls: type[LLMProviderError], status: int, details: ErrorDetails, body: Any
    ) -> type[LLMProviderError]:
        reasons = {d.reason for d in _details(body)}
        if "API_KEY_INVALID" in reasons or details.code == "UNAUTHENTICATED":
            return AuthFailed
        if status == 400 and details.code == "FAILED_PRECONDITION":
            return InsufficientCredit  # free tier unavailable in region / billing required
        return cls

    def error_retry_after(self, resp: httpx.Response, body: Any) -> float | None:
        header = retry_after_s(resp.headers)
        if header is not None:
            return header
        for detail in _details(body):
            if str(detail.type or "").endswith("google.rpc.RetryInfo"):
                return go_duration_s(str(detail.retryDelay or ""))  # "30s", "0.250s"
        return None
