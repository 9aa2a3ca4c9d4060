"""Google Gemini ``POST /v1beta/models/{model}:generateContent`` wire format.

This module owns Gemini's request checks (``x-goog-api-key`` header or ``?key=``; ``contents``
with roles ``user``/``model`` and non-empty ``parts``; ``systemInstruction``;
``generationConfig.maxOutputTokens``), the ``GenerateContentResponse`` reply with
``usageMetadata`` and ``modelVersion``, and the ``{"error": {"code", "message", "status",
"details"}}`` envelope. A 429 carries ``google.rpc.QuotaFailure``, ``google.rpc.Help`` and
``google.rpc.RetryInfo`` (``retryDelay: "NNs"``) in ``details``; like the real API it sends no
``retry-after`` header. Auth failures are 401 ``UNAUTHENTICATED`` (the real API answers a bad
key with 400 ``API_KEY_INVALID``; the simulator uses 401 so every provider's auth error looks
alike to tests) with an ``ErrorInfo`` detail whose ``reason`` is ``API_KEY_INVALID``.
Function calls come back as ``functionCall`` parts (object ``args``, no id) with finishReason
``STOP``; a refusal as a content-less candidate with ``SAFETY``; features are read by
``google_features``.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from aiohttp import web

from simulator.providers.base import (
    Dialect,
    Rendered,
    SimError,
    dumps,
    invalid,
    optional_max_tokens,
    require_list,
)
from simulator.providers.google_features import (
    check_signatures,
    check_top_level,
    needs_signatures,
    norm,
    parse_config,
    parse_tools,
    walk_parts,
)
from simulator.textgen import ChatRequest, Completion
from simulator.tooling import Features

_FINISH = {
    "tool": "STOP",
    "refusal": "SAFETY",
    "length": "MAX_TOKENS",
    "stop_sequence": "STOP",
    "stop": "STOP",
}

_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_TYPE = "type.googleapis.com/google.rpc."


def google_duration(seconds: float) -> str:
    """protobuf Duration JSON: ``"1s"``, ``"0.250s"``."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:.3f}s"


def _error_details(err: SimError) -> list[dict[str, Any]]:
    if err.kind == "auth_bad":
        return [
            {
                "@type": _TYPE + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
    if err.status != 429:
        return []
    details: list[dict[str, Any]] = [
        {
            "@type": _TYPE + "QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                    "quotaDimensions": {"location": "global", "model": err.ctx.get("model", "")},
                    "quotaValue": str(err.ctx.get("limit", "")),
                }
            ],
        },
        {
            "@type": _TYPE + "Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
    ]
    if err.retry_after is not None:
        details.append(
            {"@type": _TYPE + "RetryInfo", "retryDelay": google_duration(err.retry_after)}
        )
    return details


def _usage_metadata(done: Completion, details: list[dict[str, Any]]) -> dict[str, Any]:
    """`usageMetadata`: cached tokens inside promptTokenCount, thoughts OUTSIDE candidates."""
    meta: dict[str, Any] = {
        "promptTokenCount": done.prompt_tokens,
        "candidatesTokenCount": done.completion_tokens - done.reasoning_tokens,
        "totalTokenCount": done.total_tokens,
        "promptTokensDetails": details,
    }
    if done.cached_tokens:
        meta["cachedContentTokenCount"] = done.cached_tokens
    if done.reasoning_tokens:
        meta["thoughtsTokenCount"] = done.reasoning_tokens
    return meta


class GoogleDialect(Dialect):
    """generativelanguage.googleapis.com ``v1beta`` generateContent."""

    name: ClassVar[str] = "google"
    usage_classes: ClassVar[frozenset[str]] = frozenset({"cached", "reasoning"})
    base_path: ClassVar[str] = ""
    chat_path: ClassVar[str] = "/v1beta/models/{model}:generateContent"
    # Also served: google-genai 3.x defaults to api_version "v1" for AI Studio keys.
    alias_paths: ClassVar[tuple[str, ...]] = ("/v1/models/{model}:generateContent",)
    request_id_header: ClassVar[str | None] = None
    retry_after_headers: ClassVar[bool] = False
    messages: ClassVar[dict[str, str]] = {
        "auth_missing": (
            "Method doesn't allow unregistered callers (callers without established identity)."
            " Please use API Key or other form of API consumer identity to call this API."
        ),
        "auth_bad": "API key not valid. Please pass a valid API key.",
        "not_found": (
            "models/{model} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods."
        ),
        "context": (
            "The input token count ({prompt_tokens}) plus maxOutputTokens ({max_tokens}) "
            "exceeds the maximum number of tokens allowed ({window})."
        ),
        "rate_limit": (
            "You exceeded your current quota, please check your plan and billing details. "
            "Quota exceeded for metric: {what}, limit: {limit}. Please retry in {wait}."
        ),
        "server": "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
        "unavailable": "The model is overloaded. Please try again later.",
        "timeout": "Deadline expired before operation could complete.",
    }

    def check_auth(self, request: web.Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        self.judge_key(key or None)

    def parse(self, body: Any, request: web.Request) -> ChatRequest:
        if not isinstance(body, dict):
            raise invalid("Invalid JSON payload received. Expected an object.")
        check_top_level(body)
        model = request.match_info.get("model", "")
        if model.startswith("models/"):
            model = model[len("models/") :]
        body = norm(body)
        contents = require_list(body, "contents")
        features = Features()
        parse_tools(body, features)
        texts: list[str] = []
        n_messages = len(contents)
        system = body.get("systemInstruction")
        if system is not None:
            if not isinstance(system, dict):
                raise invalid("Invalid value at 'system_instruction': expected a Content object")
            text, _ = walk_parts(system.get("parts"), "system_instruction", "user", features)
            texts.append(text)
            n_messages += 1
        last_user = ""
        for i, content in enumerate(contents):
            if not isinstance(content, dict):
                raise invalid(f"Invalid value at 'contents[{i}]': expected a Content object")
            role = content.get("role", "user")
            if role not in ("user", "model", "function"):
                raise invalid("Please use a valid role: user, model.")
            text, answered = walk_parts(content.get("parts"), f"contents[{i}]", role, features)
            features.after_tool = answered
            texts.append(text)
            if role == "user" and not answered:
                last_user = text
        check_signatures(contents, model)
        config = body.get("generationConfig") or {}
        if not isinstance(config, dict):
            raise invalid("Invalid value at 'generation_config': expected an object")
        parse_config(config, features)
        config = norm(config)
        max_tokens = optional_max_tokens(
            config.get("maxOutputTokens"), "generation_config.max_output_tokens"
        )
        return ChatRequest(model, texts, n_messages, last_user, max_tokens, features=features)

    def render(self, chat: ChatRequest, done: Completion, request_id: str) -> Rendered:
        parts: list[dict[str, Any]] = []
        if done.text or not done.tool_calls:
            parts.append({"text": done.text})
        # The Developer API's 2.x models send no functionCall.id; clients mint their own.
        parts += [{"functionCall": {"name": c.name, "args": c.arguments}} for c in done.tool_calls]
        if done.tool_calls and needs_signatures(chat.model):
            first = parts[-len(done.tool_calls)]
            first["thoughtSignature"] = base64.b64encode(
                b"sim-sig:" + done.tool_calls[0].id.encode()
            ).decode()
        candidate: dict[str, Any] = {
            "content": {"parts": parts, "role": "model"},
            "finishReason": _FINISH[done.finish],
            "index": 0,
        }
        if done.refusal:  # a blocked candidate carries no content
            del candidate["content"]
        details = [
            {"modality": "TEXT", "tokenCount": done.prompt_tokens - chat.features.image_tokens}
        ]
        if chat.features.images:
            details.append({"modality": "IMAGE", "tokenCount": chat.features.image_tokens})
        body = {
            "candidates": [candidate],
            "usageMetadata": _usage_metadata(done, details),
            "modelVersion": chat.model,
            "responseId": request_id,
        }
        return Rendered(200, dumps(body))

    def error_body(self, err: SimError, message: str, request_id: str) -> Any:
        return {
            "error": {
                "code": err.status,
                "message": message,
                "status": _STATUS.get(err.status, "UNKNOWN"),
                "details": _error_details(err),
            }
        }
