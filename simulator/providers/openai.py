"""OpenAI-style chat completions: OpenAI itself, the Hugging Face router, and local vLLM.

This module owns the ``POST .../v1/chat/completions`` wire format (request checks, the
``chat.completion`` reply, ``usage``) and three error envelopes:

* OpenAI: ``{"error": {"message", "type", "param", "code"}}`` (``param``/``code`` kept as null),
  ``x-ratelimit-*`` headers with Go-style reset durations, ``x-request-id``.
* Hugging Face: TGI-style ``{"error": "<text>", "error_type": "<type>"}`` plus the
  ``X-Error-Message`` header that huggingface_hub reads.
* Local (vLLM-style, no auth required): ``{"error": {"message", "type", "param", "code": <int>}}``;
  ``down`` answers llama.cpp's 503 ``Loading model``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from aiohttp import web

from simulator.providers.base import (
    Dialect,
    RateSnapshot,
    Rendered,
    SimError,
    content_text,
    dumps,
    go_duration,
    invalid,
    optional_max_tokens,
    require_list,
    require_str,
)
from simulator.textgen import ChatRequest, Completion

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

_OPENAI_TYPES: dict[str, tuple[str, str | None]] = {
    "auth_missing": ("invalid_request_error", None),
    "auth_bad": ("invalid_request_error", "invalid_api_key"),
    "invalid": ("invalid_request_error", None),
    "not_found": ("invalid_request_error", "model_not_found"),
    "context": ("invalid_request_error", "context_length_exceeded"),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "server": ("server_error", None),
    "unavailable": ("server_error", None),
    "overloaded": ("server_error", None),
    "timeout": ("timeout", None),
}


def parse_openai_body(body: Any, *, stream_ok: bool = False) -> ChatRequest:
    """Validate an OpenAI chat-completions body."""
    if not isinstance(body, dict):
        raise invalid("We could not parse the JSON body of your request.")
    model = require_str(body, "model")
    messages = require_list(body, "messages")
    texts: list[str] = []
    last_user = ""
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages[{i}]: must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise SimError(
                400,
                "invalid",
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                "'user', 'function', 'tool', and 'developer'.",
                ctx={"param": f"messages[{i}].role", "code": "invalid_value"},
            )
        text = content_text(message.get("content"), f"messages[{i}]")
        texts.append(text)
        if role == "user":
            last_user = text
    name = "max_completion_tokens"
    value = body.get(name)
    if value is None:
        name = "max_tokens"
        value = body.get(name)
    max_tokens = optional_max_tokens(value, name)
    stream = bool(body.get("stream"))
    if stream and not stream_ok:
        raise invalid("stream: streaming is not implemented by the llmq provider simulator")
    return ChatRequest(model, texts, len(messages), last_user, max_tokens, stream)


def openai_completion(chat: ChatRequest, done: Completion, request_id: str) -> dict[str, Any]:
    """The ``chat.completion`` object."""
    return {
        "id": "chatcmpl-" + request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": done.text, "refusal": None},
                "logprobs": None,
                "finish_reason": "length" if done.truncated else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
            "total_tokens": done.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_llmqsim",
    }


class OpenAIDialect(Dialect):
    """api.openai.com ``/v1/chat/completions``."""

    name: ClassVar[str] = "openai"
    base_path: ClassVar[str] = "/v1"
    chat_path: ClassVar[str] = "/v1/chat/completions"
    rate_limit_headers: ClassVar[bool] = True
    messages: ClassVar[dict[str, str]] = {
        "auth_missing": (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        ),
        "auth_bad": "Incorrect API key provided: {key}.",
        "not_found": "The model `{model}` does not exist or you do not have access to it.",
        "context": (
            "This model's maximum context length is {window} tokens. However, you requested "
            "{total} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). "
            "Please reduce the length of the messages or completion."
        ),
        "rate_limit": (
            "Rate limit reached for {model} on {what}: Limit {limit}, Used {used}, "
            "Requested {requested}. Please try again in {wait}."
        ),
        "server": "The server had an error while processing your request. Sorry about that!",
        "unavailable": "The engine is currently overloaded, please try again later.",
    }

    def parse(self, body: Any, request: web.Request) -> ChatRequest:
        return parse_openai_body(body)

    def render(self, chat: ChatRequest, done: Completion, request_id: str) -> Rendered:
        return Rendered(200, dumps(openai_completion(chat, done, request_id)))

    def error_body(self, err: SimError, message: str, request_id: str) -> Any:
        etype, code = _OPENAI_TYPES.get(err.kind, ("api_error", None))
        if err.kind == "rate_limit" and err.ctx.get("what", "").startswith("tokens"):
            etype = "tokens"
        return {
            "error": {
                "message": message,
                "type": etype,
                "param": err.ctx.get("param"),
                "code": err.ctx.get("code", code),
            }
        }

    def rate_headers(self, snap: RateSnapshot, now: float) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(snap.limit_requests),
            "x-ratelimit-limit-tokens": str(snap.limit_tokens),
            "x-ratelimit-remaining-requests": str(snap.remaining_requests),
            "x-ratelimit-remaining-tokens": str(snap.remaining_tokens),
            "x-ratelimit-reset-requests": go_duration(snap.reset_requests_s),
            "x-ratelimit-reset-tokens": go_duration(snap.reset_tokens_s),
        }


_TGI_TYPES: dict[str, str] = {
    "auth_missing": "authentication",
    "auth_bad": "authentication",
    "invalid": "validation",
    "context": "validation",
    "not_found": "not_found",
    "rate_limit": "overloaded",
    "server": "incomplete_generation",
    "unavailable": "unavailable",
    "overloaded": "overloaded",
    "timeout": "timeout",
}


class HuggingFaceDialect(Dialect):
    """router.huggingface.co ``/v1/chat/completions`` (OpenAI body, TGI-style errors)."""

    name: ClassVar[str] = "huggingface"
    base_path: ClassVar[str] = "/v1"
    chat_path: ClassVar[str] = "/v1/chat/completions"
    messages: ClassVar[dict[str, str]] = {
        "auth_missing": "You must provide an access token to use the Inference Providers API.",
        "auth_bad": "Invalid credentials in Authorization header",
        "not_found": "Model {model} does not exist",
        "context": (
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= {window}. "
            "Given: {prompt_tokens} `inputs` tokens and {max_tokens} `max_new_tokens`"
        ),
        "rate_limit": "Model is overloaded: rate limit reached for {what}",
    }

    def parse(self, body: Any, request: web.Request) -> ChatRequest:
        return parse_openai_body(body)

    def render(self, chat: ChatRequest, done: Completion, request_id: str) -> Rendered:
        return Rendered(200, dumps(openai_completion(chat, done, request_id)))

    def error_body(self, err: SimError, message: str, request_id: str) -> Any:
        return {"error": message, "error_type": _TGI_TYPES.get(err.kind, "unknown")}

    def error(self, err: SimError, request_id: str) -> Rendered:
        rendered = super().error(err, request_id)
        rendered.headers["X-Error-Message"] = self.message_for(err)[:200]
        rendered.headers["X-Error-Code"] = _TGI_TYPES.get(err.kind, "unknown")
        return rendered


_VLLM_TYPES: dict[str, str] = {
    "auth_missing": "AuthenticationError",
    "auth_bad": "AuthenticationError",
    "invalid": "BadRequestError",
    "context": "BadRequestError",
    "not_found": "NotFoundError",
    "rate_limit": "RateLimitError",
    "server": "InternalServerError",
    "unavailable": "unavailable_error",
    "overloaded": "unavailable_error",
    "timeout": "TimeoutError",
}


class LocalDialect(Dialect):
    """A local OpenAI-compatible server (vLLM / llama.cpp style); auth optional."""

    name: ClassVar[str] = "local"
    base_path: ClassVar[str] = "/v1"
    chat_path: ClassVar[str] = "/v1/chat/completions"
    auth_required: ClassVar[bool] = False
    messages: ClassVar[dict[str, str]] = {
        "not_found": "The model `{model}` does not exist.",
        "context": (
            "This model's maximum context length is {window} tokens. However, you requested "
            "{total} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). "
            "Please reduce the length of the messages or completion."
        ),
        "unavailable": "Loading model",
    }

    def parse(self, body: Any, request: web.Request) -> ChatRequest:
        return parse_openai_body(body)

    def render(self, chat: ChatRequest, done: Completion, request_id: str) -> Rendered:
        return Rendered(200, dumps(openai_completion(chat, done, request_id)))

    def error_body(self, err: SimError, message: str, request_id: str) -> Any:
        return {
            "error": {
                "message": message,
                "type": _VLLM_TYPES.get(err.kind, "InternalServerError"),
                "param": err.ctx.get("param"),
                "code": err.status,
            }
        }
