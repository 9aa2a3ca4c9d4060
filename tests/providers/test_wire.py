"""Pure wire-format tests: the requests each adapter builds and how it parses recorded replies."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from core.errors import ContentFiltered
from schemas.config import LLMConfig, LLMModelConfig, LLMProvider
from schemas.job import ChatMessage
from workers.providers import REGISTRY, build_adapter, has_credentials
from workers.providers.base import ProviderAdapter, ProviderRequest

KEY = "sk-wire-0123456789"
CLIENT = httpx.Client()  # builds requests only; nothing is sent


def adapter(
    provider: LLMProvider, model_id: str = "m", key: str | None = KEY, **settings: Any
) -> ProviderAdapter:
    if key:
        settings["api_key"] = key
    config = LLMConfig(
        providers={provider: settings},
        models=[LLMModelConfig(name="m", model_id=model_id, provider=provider)],
    )
    return build_adapter(config.models[0], config, CLIENT)


def req(**kw: Any) -> ProviderRequest:
    fields: dict[str, Any] = {
        "model_id": "m",
        "messages": (
            ChatMessage(role="system", content="inline system"),
            ChatMessage(role="user", content="a"),
            ChatMessage(role="user", content="b"),
            ChatMessage(role="assistant", content="c"),
            ChatMessage(role="user", content="d"),
        ),
        "max_tokens": 77,
        "system": "top system",
        "temperature": 1.4,
    }
    fields.update(kw)
    return ProviderRequest(**fields)


def body(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content)


def response(data: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        200, json=data, headers=headers, request=httpx.Request("POST", "https://x.invalid")
    )


# ---- requests --------------------------------------------------------------------------------


def test_openai_request():
    r = adapter(LLMProvider.OPENAI, organization="org-1").build_request(req())
    assert str(r.url) == "https://api.openai.com/v1/chat/completions"
    assert r.headers["authorization"] == f"Bearer {KEY}"
    assert r.headers["openai-organization"] == "org-1"
    b = body(r)
    assert b["max_completion_tokens"] == 77 and "max_tokens" not in b
    assert b["messages"][0] == {"role": "system", "content": "top system"}
    assert [m["role"] for m in b["messages"]] == [
        "system", "system", "user", "user", "assistant", "user"
    ]  # fmt: skip
    assert b["temperature"] == 1.4


@pytest.mark.parametrize(
    ("provider", "url"),
    [
        (LLMProvider.HUGGINGFACE, "https://router.huggingface.co/v1/chat/completions"),
        (LLMProvider.LOCAL, "http://localhost:8000/v1/chat/completions"),
    ],
)
def test_openai_compatible_use_max_tokens(provider, url):
    r = adapter(provider).build_request(req())
    assert str(r.url) == url
    assert body(r)["max_tokens"] == 77 and "max_completion_tokens" not in body(r)


def test_anthropic_request():
    r = adapter(LLMProvider.ANTHROPIC).build_request(req())
    assert str(r.url) == "https://api.anthropic.com/v1/messages"
    assert r.headers["x-api-key"] == KEY
    assert r.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in r.headers
    b = body(r)
    assert b["system"] == "top system\n\ninline system"
    assert b["messages"] == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]
    assert b["max_tokens"] == 77
    assert b["temperature"] == 1.0  # clamped to Anthropic's range


def test_google_request_key_in_header_not_url():
    r = adapter(LLMProvider.GOOGLE, model_id="gemini-2.5-flash").build_request(
        req(model_id="gemini-2.5-flash")
    )
    assert str(r.url) == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert r.headers["x-goog-api-key"] == KEY
    assert KEY not in str(r.url)
    b = body(r)
    assert b["systemInstruction"] == {"parts": [{"text": "top system\n\ninline system"}]}
    assert [c["role"] for c in b["contents"]] == ["user", "user", "model", "user"]
    assert b["generationConfig"] == {"maxOutputTokens": 77, "temperature": 1.4}


def test_cohere_request():
    r = adapter(LLMProvider.COHERE).build_request(req())
    assert str(r.url) == "https://api.cohere.com/v2/chat"
    assert r.headers["authorization"] == f"Bearer {KEY}"
    b = body(r)
    assert b["max_tokens"] == 77 and b["messages"][0]["role"] == "system"


def test_ollama_request():
    a = adapter(LLMProvider.LOCAL, key=None, dialect="ollama")
    r = a.build_request(req())
    assert str(r.url) == "http://localhost:11434/api/chat"
    assert "authorization" not in r.headers
    b = body(r)
    assert b["stream"] is False
    assert b["options"] == {"num_predict": 77, "temperature": 1.4}


def test_api_url_overrides_api_base_and_headers_merge():
    config = LLMConfig(
        providers={
            "openai": {"api_base": "https://proxy.example.com/v1", "headers": {"x-team": "a"}}
        },
        models=[
            LLMModelConfig(name="m", provider="openai", api_key=KEY),
            LLMModelConfig(
                name="n", provider="openai", api_url="https://other.example.com/v1/", api_key=KEY
            ),
        ],
    )
    first, second = (build_adapter(m, config, CLIENT) for m in config.models)
    assert str(first.build_request(req()).url) == "https://proxy.example.com/v1/chat/completions"
    assert str(second.build_request(req()).url) == "https://other.example.com/v1/chat/completions"
    assert first.build_request(req()).headers["x-team"] == "a"


def test_legacy_huggingface_base_maps_to_router(caplog):
    caplog.set_level(logging.WARNING)
    a = adapter(LLMProvider.HUGGINGFACE, api_base="https://api-inference.huggingface.co")
    assert a.base_url == "https://router.huggingface.co/v1"
    assert "router.huggingface.co/v1" in caplog.text and "api_base" in caplog.text


def test_has_credentials():
    assert has_credentials(*_one(LLMProvider.OPENAI, key=KEY))
    assert not has_credentials(*_one(LLMProvider.OPENAI, key=None))
    assert has_credentials(*_one(LLMProvider.LOCAL, key=None))


def _one(provider: LLMProvider, key: str | None) -> tuple[LLMModelConfig, LLMConfig]:
    config = LLMConfig(models=[LLMModelConfig(name="m", provider=provider, api_key=key)])
    return config.models[0], config


def test_registry_covers_every_provider():
    assert set(REGISTRY) == set(LLMProvider)
    for provider, cls in REGISTRY.items():
        assert cls.name == provider


# ---- replies ---------------------------------------------------------------------------------


def test_openai_reply():
    data = {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13,
                  "prompt_tokens_details": {"cached_tokens": 5}},
    }  # fmt: skip
    headers = {
        "x-request-id": "req_9",
        "x-ratelimit-limit-requests": "5000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-limit-tokens": "160000",
        "x-ratelimit-remaining-tokens": "159976",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    r = adapter(LLMProvider.OPENAI).parse_reply(response(data, headers))
    assert (r.text, r.finish_reason, r.request_id, r.model) == (
        "hi", "length", "req_9", "gpt-4o-mini-2024-07-18"
    )  # fmt: skip
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.estimated) == (11, 2, False)
    assert r.rate_limits.reset_requests_s == pytest.approx(0.012)
    assert r.rate_limits.reset_tokens_s == 360.0
    assert r.rate_limits.remaining_tokens == 159976


def test_openai_reply_null_content_and_no_usage():
    data = {
        "choices": [
            {"message": {"content": None, "refusal": "no"}, "finish_reason": "content_filter"}
        ]
    }
    r = adapter(LLMProvider.OPENAI).parse_reply(response(data))
    assert r.text == "" and r.finish_reason == "content_filter" and r.usage.estimated


def test_anthropic_reply_counts_cache_tokens():
    data = {
        "id": "msg_1",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "t", "name": "f", "input": {}}, {"type": "text", "text": "b"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 4, "output_tokens": 5},
    }  # fmt: skip
    r = adapter(LLMProvider.ANTHROPIC).parse_reply(response(data))
    assert (r.text, r.finish_reason) == ("ab", "length")  # cut short, even with a call
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [("t", "f", "{}")]
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (17, 5)
    assert r.request_id == "msg_1"


def test_anthropic_rate_limit_headers():
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2999-01-01T00:00:00Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000",
        "anthropic-ratelimit-tokens-reset": "2000-01-01T00:00:00Z",
    }
    limits = adapter(LLMProvider.ANTHROPIC).rate_limits(httpx.Headers(headers))
    assert (limits.limit_requests, limits.remaining_requests) == (50, 49)
    assert limits.reset_requests_s > 0
    assert limits.reset_tokens_s == 0.0  # already past


def test_google_reply_with_thinking_tokens():
    data = {
        "candidates": [{"content": {"parts": [{"text": "x"}, {"text": "y"}], "role": "model"}, "finishReason": "SAFETY"}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2, "thoughtsTokenCount": 5},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }  # fmt: skip
    r = adapter(LLMProvider.GOOGLE).parse_reply(response(data))
    assert (r.text, r.finish_reason, r.model, r.request_id) == (
        "xy", "content_filter", "gemini-2.5-flash", "resp-1"
    )  # fmt: skip
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (7, 7)


def test_google_blocked_prompt_is_content_filtered():
    data = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    with pytest.raises(ContentFiltered):
        adapter(LLMProvider.GOOGLE).parse_reply(response(data))


def test_cohere_reply_uses_billed_units():
    data = {
        "id": "c-1",
        "finish_reason": "MAX_TOKENS",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        "usage": {"billed_units": {"input_tokens": 5.0, "output_tokens": 3.0}, "tokens": {"input_tokens": 70.0, "output_tokens": 3.0}},
    }  # fmt: skip
    r = adapter(LLMProvider.COHERE).parse_reply(response(data))
    assert (r.text, r.finish_reason, r.request_id) == ("ok", "length", "c-1")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (5, 3)


def test_ollama_reply_without_counts_is_estimated():
    data = {
        "model": "llama3",
        "message": {"role": "assistant", "content": "z"},
        "done": True,
        "done_reason": "stop",
    }
    r = adapter(LLMProvider.LOCAL, key=None, dialect="ollama").parse_reply(response(data))
    assert (r.text, r.finish_reason, r.usage.estimated) == ("z", "stop", True)
