"""Cohere Chat API v2 (`POST {base}/v2/chat`).

Owns: the v2 body (system prompt as a `system` message, `max_tokens`; turns, images, tool
calls and results as OpenAI shapes them; `response_format` `{"type": "json_object",
"json_schema": ...}` and never with tools; OpenAI-shaped tools, `strict_tools` when one is
strict; `tool_choice` REQUIRED/NONE, a named tool emulated by sending only it with REQUIRED;
`stop_sequences` (<= 5), `p` (kept in Cohere's 0.01..0.99), `seed`, penalties (0..1, else
refused); `user` has no v2 field and is not sent: it labels the caller, not the output), the
reply (`message.content[{type: text}]`, `message.tool_calls` with JSON-text arguments,
upper-case `finish_reason`, usage from `billed_units`, which is what Cohere charges, else
`tokens`) and Cohere's bare `{"message": ...}` errors (`too many tokens` is a context error;
498 is an invalid token).
Wire reference: https://docs.cohere.com/reference/chat and https://docs.cohere.com/errors-reference.
Must not: do I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from core.errors import AuthFailed, LLMProviderError
from schemas.config import LLMModelConfig, LLMProvider
from schemas.job import Usage
from schemas.request import Feature, Features, NamedToolChoice
from workers.providers.base import ErrorDetails, ProviderReply, ProviderRequest
from workers.providers.embed_wire import CohereEmbeds
from workers.providers.features import Unsendable, finish_with_calls, refusals
from workers.providers.openai import OpenAIMessage, openai_messages, openai_tool
from workers.providers.wire import Count, Meta, Tokens, WireModel

# Not: JSON output with tools (the API refuses response_format next to tools), one call at a
# time (no such switch); images only on vision models (see capabilities_for).
CAPABILITIES = frozenset(Feature) - {
    Feature.JSON_WITH_TOOLS,
    Feature.SERIAL_TOOL_CALLS,
    Feature.VISION,
    Feature.IMAGE_URL,
}
MAX_STOP = 5
NO_PARAMETERS = {"type": "object", "properties": {}}
P_RANGE = (0.01, 0.99)  # Cohere's `p`
CHOICES = {"required": "REQUIRED", "none": "NONE"}


def cohere_features(features: Features) -> dict[str, Any]:
    """The request features as v2 chat body fields."""
    out: dict[str, Any] = cohere_tools(features)
    fmt = features.response_format
    if fmt is not None and fmt.wants_json:
        if features.tools:
            raise Unsendable("response_format together with tools (Cohere refuses both)")
        out["response_format"] = {"type": "json_object"}
        if fmt.schema_ is not None:
            out["response_format"]["json_schema"] = fmt.schema_
    s = features.sampling
    if s.stop:
        if len(s.stop) > MAX_STOP:
            raise Unsendable(f"{len(s.stop)} stop sequences (Cohere takes {MAX_STOP})")
        out["stop_sequences"] = list(s.stop)
    if s.top_p is not None:
        out["p"] = min(max(s.top_p, P_RANGE[0]), P_RANGE[1])
    if s.seed is not None:
        out["seed"] = s.seed
    for key, value in (
        ("presence_penalty", s.presence_penalty),
        ("frequency_penalty", s.frequency_penalty),
    ):
        if value is not None:
            if not 0 <= value <= 1:
                raise Unsendable(f"{key} {value} (Cohere takes 0..1)")
            out[key] = value
    return out


def cohere_tools(features: Features) -> dict[str, Any]:
    """`tools`, `tool_choice`, `strict_tools`."""
    out: dict[str, Any] = {}
    tools = list(features.tools or ())
    choice = features.tool_choice
    if isinstance(choice, NamedToolChoice):  # no named choice: offer only that tool
        tools = [t for t in tools if t.function.name == choice.name]
        out["tool_choice"] = "REQUIRED"
    elif choice in CHOICES:
        out["tool_choice"] = CHOICES[choice]
    if tools:
        out["tools"] = [openai_tool(t) for t in tools]
        for tool in out["tools"]:
            tool["function"].pop("strict", None)
            tool["function"].setdefault("parameters", NO_PARAMETERS)  # required by v2
        if any(t.function.strict for t in tools):
            out["strict_tools"] = True
    if features.parallel_tool_calls is False:
        raise Unsendable("Cohere cannot be told to make one call at a time")
    return out


class CohereCounts(WireModel):
    # The SDK types these as floats; they are whole numbers on the wire.
    input_tokens: Tokens | None = None
    output_tokens: Count = 0


class CohereUsage(WireModel):
    billed_units: CohereCounts | None = None  # what Cohere charges
    tokens: CohereCounts | None = None
    cached_tokens: Count = 0  # prompt tokens served from Cohere's cache (no cache price)


class CohereContent(WireModel):
    type: Any = None
    text: Any = None


class CohereMessage(OpenAIMessage):
    content: list[CohereContent] | None = None  # type: ignore[assignment]


class CohereChat(WireModel):
    """The parts of a v2 chat reply llmq reads."""

    message: CohereMessage
    finish_reason: Any = None
    usage: CohereUsage | None = None
    id: Meta = None
    model: Meta = None


def cohere_usage(usage: CohereUsage | None) -> Usage:
    """Billed units, else the token counts; estimated when neither has input_tokens.

    `billed_units` is what Cohere charges; `tokens` counts what the model processed (the
    prompt template too). `cached_tokens` is reported beside them; Cohere publishes no cache
    rate, so it is kept (at most the billed input) but prices like any input token."""
    for counts in (usage.billed_units, usage.tokens) if usage else ():
        if counts is not None and counts.input_tokens is not None:
            prompt = counts.input_tokens
            cached = min(usage.cached_tokens, prompt)
            return Usage(
                prompt_tokens=prompt, completion_tokens=counts.output_tokens, cached_tokens=cached
            )
    return Usage(estimated=True)


class CohereAdapter(CohereEmbeds):
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

    capabilities: ClassVar[frozenset[Feature]] = CAPABILITIES

    def __init__(self, target: Any, client: httpx.Client) -> None:
        super().__init__(target, client)
        self.url = self.base_url + self.chat_path

    @classmethod
    def capabilities_for(cls, deployment: LLMModelConfig) -> frozenset[Feature]:
        """Images only on vision models (`command-a-vision-...`)."""
        if "vision" in (deployment.model_id or deployment.name):
            return cls.capabilities | {Feature.VISION, Feature.IMAGE_URL}
        return cls.capabilities

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        self.require(req)
        messages = openai_messages(req)
        for message in messages:  # an assistant turn of only tool calls has no content
            if message["content"] is None:
                del message["content"]
        body: dict[str, Any] = {
            "model": req.model_id,
            "messages": messages,
            "max_tokens": req.max_tokens,
        }
        if req.temperature is not None:
            body["temperature"] = req.temperature
        with refusals(self):
            body.update(cohere_features(req.features))
        return self.post(self.url, body)

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        data = CohereChat.model_validate(resp.json())
        texts = [c.text for c in data.message.content or () if c.type == "text"]
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("a text block without text")
        calls = data.message.calls()
        return ProviderReply(
            text="".join(texts),
            finish_reason=finish_with_calls(self.finish(data.finish_reason), calls),
            usage=cohere_usage(data.usage),
            tool_calls=calls,
            request_id=self.request_id(resp) or data.id,
            model=data.model,
        )

    def refine(
        self, cls: type[LLMProviderError], status: int, details: ErrorDetails, body: Any
    ) -> type[LLMProviderError]:
        if status == 498:  # the SDK's InvalidTokenError
            return AuthFailed
        return cls
