"""Helpers for the simulator tests: build each provider's request, read each provider's reply.

Owns the per-provider knowledge the tests need *independently* of the simulator's code: paths,
auth headers, body layout, where usage/text/finish reason live, and the error envelope shapes.
"""

from __future__ import annotations

from typing import Any

import httpx

PROVIDERS = ("openai", "anthropic", "google", "cohere", "huggingface", "local", "ollama")

STOP = {
    "openai": "stop",
    "anthropic": "end_turn",
    "google": "STOP",
    "cohere": "COMPLETE",
    "huggingface": "stop",
    "local": "stop",
    "ollama": "stop",
}
LENGTH = {
    "openai": "length",
    "anthropic": "max_tokens",
    "google": "MAX_TOKENS",
    "cohere": "MAX_TOKENS",
    "huggingface": "length",
    "local": "length",
    "ollama": "length",
}

Message = tuple[str, str]


def build(
    provider: str,
    model: str = "test-model",
    *,
    system: str | None = None,
    messages: list[Message] | None = None,
    max_tokens: int | None = None,
    key: str | None = "sk-test",
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``(path, headers, body)`` for a chat request in ``provider``'s wire format."""
    messages = messages if messages is not None else [("user", "Hello, simulator!")]
    builder = _BUILDERS[provider]
    path, body = builder(model, system, messages, max_tokens)
    return path, _auth(provider, key), body


def _auth(provider: str, key: str | None) -> dict[str, str]:
    if key is None:
        return {"anthropic-version": "2023-06-01"} if provider == "anthropic" else {}
    if provider == "anthropic":
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}
    if provider == "google":
        return {"x-goog-api-key": key}
    return {"Authorization": f"Bearer {key}"}


def _openai_like(prefix: str) -> Any:
    def make(
        model: str, system: str | None, messages: list[Message], max_tokens: int | None
    ) -> tuple[str, dict[str, Any]]:
        msgs = [{"role": "system", "content": system}] if system is not None else []
        msgs += [{"role": r, "content": c} for r, c in messages]
        body: dict[str, Any] = {"model": model, "messages": msgs}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        return prefix + "/chat/completions", body

    return make


def _anthropic(
    model: str, system: str | None, messages: list[Message], max_tokens: int | None
) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens if max_tokens is not None else 1024,
        "messages": [{"role": r, "content": c} for r, c in messages],
    }
    if system is not None:
        body["system"] = system
    return "/anthropic/v1/messages", body


def _google(
    model: str, system: str | None, messages: list[Message], max_tokens: int | None
) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {
        "contents": [
            {"role": "model" if r == "assistant" else r, "parts": [{"text": c}]}
            for r, c in messages
        ]
    }
    if system is not None:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if max_tokens is not None:
        body["generationConfig"] = {"maxOutputTokens": max_tokens}
    return f"/google/v1beta/models/{model}:generateContent", body


def _cohere(
    model: str, system: str | None, messages: list[Message], max_tokens: int | None
) -> tuple[str, dict[str, Any]]:
    path, body = _openai_like("")(model, system, messages, max_tokens)
    return "/cohere/v2/chat", body


def _ollama(
    model: str, system: str | None, messages: list[Message], max_tokens: int | None
) -> tuple[str, dict[str, Any]]:
    _, body = _openai_like("")(model, system, messages, None)
    body["stream"] = False
    if max_tokens is not None:
        body["options"] = {"num_predict": max_tokens}
    return "/ollama/api/chat", body


_BUILDERS: dict[str, Any] = {
    "openai": _openai_like("/openai/v1"),
    "anthropic": _anthropic,
    "google": _google,
    "cohere": _cohere,
    "huggingface": _openai_like("/huggingface/v1"),
    "local": _openai_like("/local/v1"),
    "ollama": _ollama,
}


def send(client: httpx.Client, provider: str, **kwargs: Any) -> httpx.Response:
    """Build and POST a request."""
    path, headers, body = build(provider, **kwargs)
    return client.post(path, headers=headers, json=body)


def extract(provider: str, data: dict[str, Any]) -> tuple[str, int, int, str, str]:
    """``(text, prompt_tokens, completion_tokens, finish_reason, model)`` from a 200 reply."""
    if provider in ("openai", "huggingface", "local"):
        usage = data["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        choice = data["choices"][0]
        return (
            choice["message"]["content"],
            usage["prompt_tokens"],
            usage["completion_tokens"],
            choice["finish_reason"],
            data["model"],
        )
    if provider == "anthropic":
        assert data["type"] == "message"
        usage = data["usage"]
        text = "".join(b["text"] for b in data["content"] if b["type"] == "text")
        return (
            text,
            usage["input_tokens"],
            usage["output_tokens"],
            data["stop_reason"],
            data["model"],
        )
    if provider == "google":
        meta = data["usageMetadata"]
        assert meta["totalTokenCount"] == meta["promptTokenCount"] + meta["candidatesTokenCount"]
        cand = data["candidates"][0]
        text = "".join(p["text"] for p in cand["content"]["parts"])
        return (
            text,
            meta["promptTokenCount"],
            meta["candidatesTokenCount"],
            cand["finishReason"],
            data["modelVersion"],
        )
    if provider == "cohere":
        billed = data["usage"]["billed_units"]
        assert data["usage"]["tokens"]["input_tokens"] >= billed["input_tokens"]
        text = "".join(c["text"] for c in data["message"]["content"] if c["type"] == "text")
        return text, billed["input_tokens"], billed["output_tokens"], data["finish_reason"], ""
    assert provider == "ollama" and data["done"] is True
    return (
        data["message"]["content"],
        data["prompt_eval_count"],
        data["eval_count"],
        data["done_reason"],
        data["model"],
    )


def error_message(provider: str, data: Any) -> str:
    """Check the provider's error envelope shape and return its message."""
    if provider in ("openai", "local"):
        err = data["error"]
        assert set(err) == {"message", "type", "param", "code"}
        return err["message"]
    if provider == "anthropic":
        assert data["type"] == "error" and data["request_id"].startswith("req_")
        assert set(data["error"]) == {"type", "message"}
        return data["error"]["message"]
    if provider == "google":
        err = data["error"]
        assert set(err) == {"code", "message", "status", "details"}
        assert isinstance(err["code"], int)
        return err["message"]
    if provider == "cohere":
        assert set(data) == {"message"}
        return data["message"]
    if provider == "huggingface":
        assert isinstance(data["error"], str) and "error_type" in data
        return data["error"]
    assert provider == "ollama" and set(data) == {"error"}
    return data["error"]
