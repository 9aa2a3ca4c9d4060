"""Cohere Chat API v2 (``POST /v2/chat``) wire format.

This module owns Cohere's request checks (Bearer key, required ``model`` and ``messages``, roles
system/user/assistant/tool, ``max_tokens``), the reply (``finish_reason`` ``COMPLETE`` or
``MAX_TOKENS``, ``message.content[{type: text}]``, ``usage.billed_units`` and ``usage.tokens``)
and the bare ``{"message": "..."}`` error envelope (``invalid request: ...``,
``too many tokens: ...``, ``invalid api token``). Cohere documents no rate-limit headers, so
none are sent (429s still carry ``retry-after``/``retry-after-ms``). Features: OpenAI-shaped
``tools`` (``parameters`` required) and messages (``oai_shape``), ``tool_choice`` REQUIRED/NONE only, ``response_format``
``{"type": "json_object", "json_schema"?}`` (never with tools/documents: 400), ``stop_sequences``
<= 5, ``p`` 0.01-0.99, ``k`` 0-500, penalties 0-1, ``seed``. Tool calls come back in
``message.tool_calls`` (string arguments) with a ``tool_plan`` and ``finish_reason: TOOL_CALL``.
"""

from __future__ import annotations

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
    require_str,
)
from simulator.providers.oai_shape import (
    integer,
    number_in,
    parse_tools,
    string_list,
    walk_messages,
)
from simulator.textgen import ChatRequest, Completion
from simulator.tooling import Features

ROLES = frozenset({"system", "user", "assistant", "tool"})
_FINISH = {
    "tool": "TOOL_CALL",
    "refusal": "COMPLETE",
    "length": "MAX_TOKENS",
    "stop_sequence": "STOP_SEQUENCE",
    "stop": "COMPLETE",
}
_RANGES = (
    ("temperature", 0, 5),
    ("p", 0.01, 0.99),
    ("k", 0, 500),
    ("frequency_penalty", 0, 1),
    ("presence_penalty", 0, 1),
)


def _tool_choice(choice: Any, features: Features) -> None:
    if choice is None:
        return
    if choice not in ("REQUIRED", "NONE"):
        raise invalid("invalid request: tool_choice must be one of 'REQUIRED' or 'NONE'")
    if not features.tools:
        raise invalid("invalid request: tool_choice requires tools to be specified")
    features.choice = "required" if choice == "REQUIRED" else "none"


def _response_format(body: dict[str, Any], features: Features) -> None:
    fmt = body.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object"):
        raise invalid("invalid request: response_format.type must be 'text' or 'json_object'")
    extra = set(fmt) - {"type", "json_schema"}
    if extra:
        raise invalid(f"invalid request: unknown field(s) in response_format: {sorted(extra)}")
    if kind == "text":
        return
    if body.get("tools") or body.get("documents"):
        raise invalid(
            "invalid request: response_format is not supported together with tools or documents"
        )
    schema = fmt.get("json_schema")
    if schema is not None and not isinstance(schema, dict):
        raise invalid("invalid request: response_format.json_schema must be an object")
    features.json, features.schema = True, schema


class CohereDialect(Dialect):
    """api.cohere.com ``/v2/chat``."""

    name: ClassVar[str] = "cohere"
    usage_classes: ClassVar[frozenset[str]] = frozenset({"cached"})
    base_path: ClassVar[str] = ""
    chat_path: ClassVar[str] = "/v2/chat"
    messages: ClassVar[dict[str, str]] = {
        "auth_missing": "no api key supplied",
        "auth_bad": "invalid api token",
        "not_found": (
            "model '{model}' not found, make sure the correct model ID was used and that you "
            "have access to the model."
        ),
        "context": (
            "too many tokens: total number of tokens in the prompt cannot exceed {window} - "
            "received {total}. Try using a shorter prompt, or enabling prompt truncating."
        ),
        "rate_limit": (
            "You are past the per minute request limit, please wait and try again later."
        ),
        "server": "internal server error, this has been reported to our developers",
        "unavailable": "service unavailable, please try again later",
        "timeout": "request timed out",
    }

    def parse(self, body: Any, request: web.Request) -> ChatRequest:
        if not isinstance(body, dict):
            raise invalid("invalid request: body must be a JSON object")
        try:
            model = require_str(body, "model")
            messages = require_list(body, "messages")
            features = Features()
            parse_tools(body.get("tools"), features, strict_rules=False)
            for i, tool in enumerate(features.tools):
                if tool.parameters is None:  # v2's ToolV2Function requires parameters
                    raise invalid(f"invalid request: tools[{i}].function.parameters is required")
            _tool_choice(body.get("tool_choice"), features)
            texts, last_user = walk_messages(messages, ROLES, features)
            _response_format(body, features)
            features.stop = string_list(body.get("stop_sequences"), "stop_sequences", 5)
            for name, low, high in _RANGES:
                number_in(body, name, low, high)
            integer(body, "seed")
            features.seed = body.get("seed")
            integer(body, "k")
        except SimError as err:
            if err.message.startswith("invalid request"):
                raise
            raise invalid("invalid request: " + err.message) from None
        max_tokens = optional_max_tokens(body.get("max_tokens"), "max_tokens")
        if body.get("stream"):
            raise invalid("invalid request: streaming is not implemented by the simulator")
        return ChatRequest(model, texts, len(messages), last_user, max_tokens, features=features)

    def render(self, chat: ChatRequest, done: Completion, request_id: str) -> Rendered:
        message: dict[str, Any] = {"role": "assistant"}
        if done.tool_calls:
            names = ", ".join(c.name for c in done.tool_calls)
            message["tool_plan"] = f"I will call {names} to answer this."
            message["tool_calls"] = [
                {
                    "id": call.name + "_" + call.id[:12],
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for call in done.tool_calls
            ]
        else:
            message["content"] = [{"type": "text", "text": done.text}]
        body = {
            "id": request_id,
            "finish_reason": _FINISH[done.finish],
            "message": message,
            "usage": {
                "billed_units": {
                    "input_tokens": done.prompt_tokens,
                    "output_tokens": done.completion_tokens,
                },
                "tokens": {
                    "input_tokens": done.prompt_tokens,
                    "output_tokens": done.completion_tokens,
                },
                "cached_tokens": done.cached_tokens,
            },
        }
        return Rendered(200, dumps(body))

    def error_body(self, err: SimError, message: str, request_id: str) -> Any:
        if err.kind == "invalid" and not message.startswith("invalid request"):
            message = "invalid request: " + message
        return {"message": message}
