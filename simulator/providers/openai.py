"""OpenAI-style chat completions: OpenAI itself, the Hugging Face router, and local vLLM.

This module owns the ``POST .../v1/chat/completions`` wire format (request checks, the
``chat.completion`` reply with ``tool_calls`` (string arguments; ``finish_reason`` "tool_calls",
or "stop" when a named tool was forced) and ``refusal``, ``usage``) and three error envelopes.
Structured output, tools, images and stop are read by ``oai_shape``; only OpenAI itself gets
OpenAI's extra rejections (see ``parse_openai_body``). Error envelopes:

* OpenAI: ``{"error": {"message", "type", "param", "code"}}`` (``param``/``code`` kept as null),
  ``x-ratelimit-*`` headers with Go-style reset durations, ``x-request-id``.
* Hugging Face: TGI-style ``{"error": "<text>", "error_type": "<type>"}`` plus the
  ``X-Error-Message`` header that huggingface_hub reads.
* Local (vLLM-style, no auth required): ``{"error": {"message", "type", "param", "code": <int>}}``;
  ``down`` answers llama.cpp's 503 ``Loading model``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from simulator.providers.base import (
    Dialect,
    RateSnapshot,
    Rendered,
    SimError,
    dumps,
    go_duration,
    invalid,
    optional_max_tokens,
    require_list,
    require_str,
)
from simulator.providers.oai_shape import (
    bad,
    check_known,
    integer,
    number_in,
    parse_response_format,
    parse_tool_choice,
    parse_tools,
    string_list,
    walk_messages,
)
from simulator.providers.usage_api import completions_usage, costs, unix_window
from simulator.textgen import ChatRequest, Completion
from simulator.tooling import Features

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


def parse_openai_body(body: Any, *, stream_ok: bool = False, strict: bool = False) -> ChatRequest:
    """Validate an OpenAI chat-completions body; ``strict`` applies api.openai.com's own rules
    (``json_object`` needs the word "json" in the messages, at most 4 stop strings, strict
    schemas checked), which OpenAI-compatible servers do not enforce."""
    if not isinstance(body, dict):
        raise invalid("We could not parse the JSON body of your request.")
    if strict:
        check_known(body)
    model = require_str(body, "model")
    messages = require_list(body, "messages")
    features = Features()
    parse_tools(body.get("tools"), features, strict_rules=strict)
    parse_tool_choice(body.get("tool_choice"), features)
    features.parallel = body.get("parallel_tool_calls", True) is not False
    texts, last_user = walk_messages(messages, ROLES, features)
    parse_response_format(body.get("response_format"), features, strict_rules=strict)
    guided = body.get("structured_outputs") or {}  # vLLM's extension (was guided_json)
    if not strict and isinstance(guided, dict) and isinstance(guided.get("json"), dict):
        features.json, features.schema = True, guided["json"]
    if strict and (body.get("response_format") or {}).get("type") == "json_object":
        if not any("json" in t.lower() for t in texts):
            raise bad(
                "'messages' must contain the word 'json' in some form, to use 'response_format' "
                "of type 'json_object'.",
                "messages",
            )
    features.stop = string_list(body.get("stop"), "stop", 4 if strict else None)
    number_in(body, "temperature", 0, 2)
    number_in(body, "top_p", 0, 1)
    number_in(body, "presence_penalty", -2, 2)
    number_in(body, "frequency_penalty", -2, 2)
    integer(body, "seed")
    features.seed = body.get("seed")
    name = "max_completion_tokens"
    value = body.get(name)
    if value is None:
        name = "max_tokens"
        value = body.get(name)
    max_tokens = optional_max_tokens(value, name)
    stream = bool(body.get("stream"))
    if stream and not stream_ok:
        raise invalid("stream: streaming is not implemented by the llmq provider simulator")
    return ChatRequest(model, texts, len(messages), last_user, max_tokens, stream, features)


def openai_message(chat: ChatRequest, done: Completion) -> tuple[dict[str, Any], str]:
    """The assistant ``message`` and ``finish_reason`` of a reply."""
    message: dict[str, Any] = {"role": "assistant", "content": done.text, "refusal": None}
    finish = {"length": "length", "tool": "tool_calls"}.get(done.finish, "stop")
    if done.refusal:
        message["content"], message["refusal"] = None, done.text
    if done.tool_calls:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": "call_" + call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in done.tool_calls
        ]
        if chat.features.choice == "named":  # OpenAI says "stop" when a named tool was forced
            finish = "stop"
    return message, finish


def openai_completion(chat: ChatRequest, done: Completion, request_id: str) -> dict[str, Any]:
    """The ``chat.completion`` object."""
    message, finish = openai_message(chat, done)
    return {
        "id": "chatcmpl-" + request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
            "total_tokens": done.total_tokens,
            # both inside their totals (issue 19)
            "prompt_tokens_details": {"cached_tokens": done.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": done.reasoning_tokens,
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
    usage_classes: ClassVar[frozenset[str]] = frozenset({"cached", "reasoning"})
    report_routes: ClassVar[Mapping[str, tuple[Any, Any]]] = {
        "/v1/organization/usage/completions": (unix_window, completions_usage),
        "/v1/organization/costs": (unix_window, costs),
    }
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
        return parse_openai_body(body, strict=True)

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
    usage_classes: ClassVar[frozenset[str]] = frozenset({"cached", "reasoning"})
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
