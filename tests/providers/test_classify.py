"""Error classification from recorded provider replies (pure: no server): status first,
body markers second, Retry-After from headers or (Google) the body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from core.errors import (
    AuthFailed,
    BadRequest,
    ContentFiltered,
    ContextTooLong,
    InsufficientCredit,
    MalformedReply,
    ModelUnavailable,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from schemas.config import LLMConfig, LLMModelConfig, LLMProvider
from workers.providers import build_adapter
from workers.providers.base import ProviderAdapter

KEY = "sk-classify-abcdef123456"
CLIENT = httpx.Client()  # never used to send: classification is pure


def adapter(provider: LLMProvider, dialect: str = "openai") -> ProviderAdapter:
    settings: dict[str, Any] = {"api_key": KEY}
    if dialect != "openai":
        settings["dialect"] = dialect
    config = LLMConfig(
        providers={provider: settings},
        models=[LLMModelConfig(name="m", provider=provider)],
    )
    return build_adapter(config.models[0], config, CLIENT)


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://example.invalid/x")
    if isinstance(body, str | bytes):
        return httpx.Response(status, content=body, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def openai_error(message: str, etype: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


def anthropic_error(etype: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": etype, "message": message}, "request_id": "req_1"}


def google_error(code: int, status: str, message: str, details: list | None = None) -> dict:
    return {"error": {"code": code, "message": message, "status": status, "details": details or []}}


OA, AN, GO, CO, HF, LO = (
    LLMProvider.OPENAI,
    LLMProvider.ANTHROPIC,
    LLMProvider.GOOGLE,
    LLMProvider.COHERE,
    LLMProvider.HUGGINGFACE,
    LLMProvider.LOCAL,
)

CASES = [
    # (provider, status, body, headers, expected class, expected retry_after)
    (OA, 400, openai_error("too long", "invalid_request_error", "context_length_exceeded"), {}, ContextTooLong, None),
    (OA, 400, openai_error("bad param", "invalid_request_error"), {}, BadRequest, None),
    (OA, 400, openai_error("flagged", "invalid_request_error", "content_filter"), {}, ContentFiltered, None),
    (OA, 401, openai_error("Incorrect API key", "invalid_request_error", "invalid_api_key"), {}, AuthFailed, None),
    (OA, 403, openai_error("region", "invalid_request_error"), {}, AuthFailed, None),
    (OA, 404, openai_error("no such model", "invalid_request_error", "model_not_found"), {}, ModelUnavailable, None),
    (OA, 429, openai_error("slow down", "requests", "rate_limit_exceeded"), {"retry-after-ms": "1500", "retry-after": "9"}, RateLimited, 1.5),
    (OA, 429, openai_error("slow down", "tokens", "rate_limit_exceeded"), {"retry-after": "7"}, RateLimited, 7.0),
    (OA, 429, openai_error("You exceeded your current quota", "insufficient_quota", "insufficient_quota"), {}, InsufficientCredit, None),
    (OA, 500, openai_error("oops", "server_error"), {}, ProviderUnavailable, None),
    (OA, 503, openai_error("overloaded", "server_error"), {"retry-after": "3"}, ProviderUnavailable, 3.0),
    (OA, 504, "gateway timeout", {}, ProviderTimeout, None),
    (OA, 302, "", {"location": "https://elsewhere"}, MalformedReply, None),
    (OA, 401, openai_error("too many tokens in your key", "x"), {}, AuthFailed, None),  # status first
    (AN, 529, anthropic_error("overloaded_error", "Overloaded"), {}, ProviderUnavailable, None),
    (AN, 400, anthropic_error("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"), {}, ContextTooLong, None),
    (AN, 400, anthropic_error("invalid_request_error", "Your credit balance is too low to access the Anthropic API."), {}, InsufficientCredit, None),
    (AN, 402, anthropic_error("billing_error", "billing"), {}, InsufficientCredit, None),
    (AN, 429, anthropic_error("rate_limit_error", "limit"), {"retry-after": "12"}, RateLimited, 12.0),
    (AN, 500, anthropic_error("api_error", "Internal server error"), {}, ProviderUnavailable, None),
    (AN, 413, anthropic_error("request_too_large", "Request exceeds the maximum size"), {}, BadRequest, None),
    (GO, 429, google_error(429, "RESOURCE_EXHAUSTED", "quota", [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"},
    ]), {}, RateLimited, 30.0),
    (GO, 429, google_error(429, "RESOURCE_EXHAUSTED", "quota"), {}, RateLimited, None),
    (GO, 400, google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
    ]), {}, AuthFailed, None),
    (GO, 400, google_error(400, "FAILED_PRECONDITION", "User location is not supported"), {}, InsufficientCredit, None),
    (GO, 400, google_error(400, "INVALID_ARGUMENT", "The input token count (1200) plus maxOutputTokens (100) exceeds the maximum number of tokens allowed (1000)."), {}, ContextTooLong, None),
    (GO, 404, google_error(404, "NOT_FOUND", "models/x is not found"), {}, ModelUnavailable, None),
    (GO, 503, google_error(503, "UNAVAILABLE", "The model is overloaded."), {}, ProviderUnavailable, None),
    (GO, 504, google_error(504, "DEADLINE_EXCEEDED", "Deadline expired"), {}, ProviderTimeout, None),
    (CO, 400, {"message": "too many tokens: total number of tokens in the prompt cannot exceed 4081"}, {}, ContextTooLong, None),
    (CO, 400, {"message": "invalid request: messages must not be empty"}, {}, BadRequest, None),
    (CO, 401, {"message": "invalid api token"}, {}, AuthFailed, None),
    (CO, 402, {"message": "Please add a payment method"}, {}, InsufficientCredit, None),
    (CO, 498, {"message": "invalid token"}, {}, AuthFailed, None),
    (CO, 429, {"message": "You are past the per minute request limit"}, {"retry-after": "4"}, RateLimited, 4.0),
    (HF, 402, {"error": "You have exceeded your monthly included credits"}, {}, InsufficientCredit, None),
    (HF, 422, {"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096", "error_type": "validation"}, {}, ContextTooLong, None),
    (HF, 429, {"error": "Model is overloaded", "error_type": "overloaded"}, {}, RateLimited, None),
    (HF, 500, b"", {"x-error-message": "incomplete generation", "x-error-code": "incomplete_generation"}, ProviderUnavailable, None),
    (LO, 503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}, {}, ProviderUnavailable, None),
    (LO, 404, {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "param": None, "code": 404}, {}, ModelUnavailable, None),
    (LO, 400, {"object": "error", "message": "This model's maximum context length is 2048 tokens.", "type": "BadRequestError", "code": 400}, {}, ContextTooLong, None),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "status", "body", "headers", "expected", "retry"), CASES)
def test_classify(provider, status, body, headers, expected, retry):
    err = adapter(provider).classify_error(reply(status, body, headers))
    assert type(err) is expected
    assert err.status == status
    assert err.provider == provider.value
    assert err.model == "m"
    assert err.retry_after == (pytest.approx(retry) if retry is not None else None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": "model 'llama3' not found"}, ModelUnavailable),
        ({"error": "prompt too long; exceeded max context length by 12 tokens"}, ContextTooLong),
    ],
)
def test_classify_ollama(body, expected):
    status = 404 if expected is ModelUnavailable else 400
    err = adapter(LO, "ollama").classify_error(reply(status, body))
    assert type(err) is expected


def test_retry_after_http_date():
    err = adapter(OA).classify_error(
        reply(429, openai_error("x", "requests"), {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    )
    assert err.retry_after == 0.0  # in the past: go now, never negative


def test_request_id_kept():
    err = adapter(AN).classify_error(
        reply(500, anthropic_error("api_error", "x"), {"request-id": "req_abc"})
    )
    assert err.request_id == "req_abc"


def test_echoed_key_is_redacted():
    body = openai_error(f"Incorrect API key provided: {KEY}.", "invalid_request_error")
    err = adapter(OA).classify_error(reply(401, body))
    assert KEY not in str(err) and KEY not in repr(err)
    assert "***" in str(err)


def test_long_messages_are_truncated():
    err = adapter(CO).classify_error(reply(400, {"message": "x" * 10_000}))
    assert len(str(err)) <= 500
