"""Cohere Chat API v2 (`POST {base}/v2/chat`).

Owns: the v2 body (system prompt as a `system` message, `max_tokens`), the reply
(`message.content[{type: text}]`, upper-case `finish_reason`, usage from `billed_units`, which
is what Cohere charges, else `tokens`) and Cohere's bare `{"message": ...}` errors
(`too many tokens` is a context error; 498 is an invalid token).
Wire reference: https://docs.cohere.com/reference/chat and https://docs.cohere.com/errors-reference.
Must not: do I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from core.errors import AuthFailed, LLMProviderError
from schemas.config import LLMProvider
from schemas.job import Usage
from workers.providers.base import ErrorDetails, ProviderAdapter, ProviderReply, ProviderRequest
from workers.providers.openai import openai_messages


def cohere_usage(data: dict[str, Any]) -> Usage:
    usage = data.get("usage") or {}
    for key in ("billed_units", "tokens"):
        counts = usage.get(key)
        if isinstance(counts, dict) and counts.get("input_tokens") is not None:
            # The SDK types these as floats; they are whole numbers on the wire.
            return Usage(
                prompt_tokens=int(counts["input_tokens"]),
                completion_tokens=int(counts.get("output_tokens") or 0),
            )
    return Usage(estimated=True)


class CohereAdapter(ProviderAdapter):
    name: ClassVar[LLMProvider] = LLMProvider.COHERE
    env_key: ClassVar[str | None] = "COHERE_API_KEY"
    default_base_url: ClassVar[str] = "https://api.cohere.com"
    chat_path: ClassVar[str] = "/v2/chat"
    finish_reasons: ClassVar[dict[str, str]] = {
        "COMPLETE": "stop",
        "STOP_SEQUENCE": "stop",
        "MAX_TOKENS": "length",
        "TOOL_CALL": "tool_calls",
    }

    def __init__(self, target: Any, client: httpx.Client) -> None:
        super().__init__(target, client)
        self.url = self.base_url + self.chat_path

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        body: dict[str, Any] = {
            "model": req.model_id,
            "messages": openai_messages(req),
            "max_tokens": req.max_tokens,
        }
        if req.temperature is not None:
            body["temperature"] = req.temperature
        return self.post(self.url, body)

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        data = resp.json()
        content = data["message"].get("content") or []
        text = "".join(c["text"] for c in content if c.get("type") == "text")
        return ProviderReply(
            text=text,
            finish_reason=self.finish(data.get("finish_reason")),
            usage=cohere_usage(data),
            request_id=self.request_id(resp) or data.get("id"),
            model=data.get("model"),
        )

    def refine(
        self, cls: type[LLMProviderError], status: int, details: ErrorDetails, body: Any
    ) -> type[LLMProviderError]:
        if status == 498:  # the SDK's InvalidTokenError
            return AuthFailed
        return cls
