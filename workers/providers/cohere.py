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
from workers.providers.wire import Count, Meta, Tokens, WireModel


class CohereCounts(WireModel):
    # The SDK types these as floats; they are whole numbers on the wire.
    input_tokens: Tokens | None = None
    output_tokens: Count = 0


class CohereUsage(WireModel):
    billed_units: CohereCounts | None = None  # what Cohere charges
    tokens: CohereCounts | None = None


class CohereContent(WireModel):
    type: Any = None
    text: Any = None


class CohereMessage(WireModel):
    content: list[CohereContent] | None = None


class CohereChat(WireModel):
    """The parts of a v2 chat reply llmq reads."""

    message: CohereMessage
    finish_reason: Any = None
    usage: CohereUsage | None = None
    id: Meta = None
    model: Meta = None


def cohere_usage(usage: CohereUsage | None) -> Usage:
    """Billed units, else the token counts; estimated when neither has input_tokens."""
    for counts in (usage.billed_units, usage.tokens) if usage else ():
        if counts is not None and counts.input_tokens is not None:
            return Usage(prompt_tokens=counts.input_tokens, completion_tokens=counts.output_tokens)
    return Usage(estimated=True)


class CohereAdapter(ProviderAdapter):
    name: ClassVar[str] = LLMProvider.COHERE
    env_keys: ClassVar[tuple[str, ...]] = ("COHERE_API_KEY", "CO_API_KEY")
    default_base_url: ClassVar[str] = "https://api.cohere.com"
    genai_prices_id: ClassVar[str | None] = "cohere"
    simulator_dialect: ClassVar[str] = "cohere"
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
        data = CohereChat.model_validate(resp.json())
        texts = [c.text for c in data.message.content or () if c.type == "text"]
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("a text block without text")
        return ProviderReply(
            text="".join(texts),
            finish_reason=self.finish(data.finish_reason),
            usage=cohere_usage(data.usage),
            request_id=self.request_id(resp) or data.id,
            model=data.model,
        )

    def refine(
        self, cls: type[LLMProviderError], status: int, details: ErrorDetails, body: Any
    ) -> type[LLMProviderError]:
        if status == 498:  # the SDK's InvalidTokenError
            return AuthFailed
        return cls
