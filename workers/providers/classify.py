"""How a non-2xx reply's status and body pick its place in the error tree (the neutral half).

Owns: `STATUS_CLASSES` and `status_class` (status first), the body markers that may refine a
400/401/429 (context too long, content filtered, out of credit) and `error_details` (message
and code from the common error envelopes). Must not: know a provider's wire format (each
adapter's `refine` hook does) or classify by message text where a status decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from core.errors import (
    AuthFailed,
    BadRequest,
    InsufficientCredit,
    LLMProviderError,
    MalformedReply,
    ModelUnavailable,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)


class ErrorDetails(NamedTuple):
    """The provider's own words about an error: message and machine-readable code/type."""

    message: str
    code: str | None = None


# Status first: this table decides the class; body markers may only refine it.
STATUS_CLASSES: dict[int, type[LLMProviderError]] = {
    400: BadRequest,
    401: AuthFailed,
    402: InsufficientCredit,
    403: AuthFailed,
    404: ModelUnavailable,
    408: ProviderTimeout,
    409: ProviderUnavailable,  # the SDKs retry conflicts
    413: BadRequest,
    422: BadRequest,
    429: RateLimited,
    499: ProviderUnavailable,  # request cancelled upstream: try again
    504: ProviderTimeout,
}

CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "context length",
    "prompt is too long",
    "prompt too long",
    "too many tokens",
    "exceeds the maximum number of tokens",
    "`inputs` tokens + `max_new_tokens`",
)
CREDIT_MARKERS = ("insufficient_quota", "credit balance", "billing_error", "billing limit")
FILTER_MARKERS = ("content_filter", "content_policy_violation", "content management policy")


def status_class(status: int) -> type[LLMProviderError]:
    """The error class an HTTP status alone implies."""
    if status in STATUS_CLASSES:
        return STATUS_CLASSES[status]
    if status >= 500:
        return ProviderUnavailable  # 500, 502, 503, 529 overloaded, ...
    if status >= 400:
        return BadRequest
    return MalformedReply  # 1xx/3xx where a reply was expected


def matches(details: ErrorDetails, markers: Iterable[str]) -> bool:
    text = f"{details.code or ''} {details.message}".lower()
    return any(marker.lower() in text for marker in markers)


def error_details(body: Any, text: str) -> ErrorDetails:
    """Message and code from the common envelopes: `{"error": {...}}` (OpenAI, Anthropic,
    Google, vLLM), `{"error": "..."}` (TGI, Ollama), `{"message": "..."}` (Cohere)."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, str):
            code = body.get("error_type")
            return ErrorDetails(err, code if isinstance(code, str) else None)
        if isinstance(err, dict):
            message = err.get("message") or err.get("error") or text
            code = next(
                (err[k] for k in ("code", "status", "type") if isinstance(err.get(k), str)), None
            )
            return ErrorDetails(str(message), code)
    return ErrorDetails(text.strip() or "(empty body)")
