"""Self-hosted servers: OpenAI-compatible (vLLM, llama.cpp, LM Studio; the default dialect) and
Ollama's native `POST {base}/api/chat` (`providers.local.dialect: ollama`).

Owns: the two local dialects. The key is optional (sent as Bearer only when configured);
there are no rate-limit headers. The OpenAI-compatible dialect translates features exactly as
OpenAI's adapter does. Ollama: `stream: false` (its default is an NDJSON stream),
`options.num_predict` for max tokens, `done_reason`, `prompt_eval_count`/`eval_count`
(omitted when zero); `format` "json" or a schema; `tools`; sampling in `options`; images as raw
base64 in a message's `images`; tool calls with object arguments, tool results with
`tool_name`. Ollama has no `tool_choice`, no one-call-at-a-time switch and no image URLs
(capabilities say no), and no `user` field (not sent: it labels the caller, not the output).
References: https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html,
https://github.com/ollama/ollama/blob/main/docs/api.md. Must not: do I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from schemas.config import LLMProvider
from schemas.job import ChatMessage, Usage
from schemas.request import Feature, Features, ToolCall
from workers.providers.base import AdapterTarget, ProviderAdapter, ProviderReply, ProviderRequest
from workers.providers.embed_wire import OllamaEmbeds
from workers.providers.features import (
    Unsendable,
    args_object,
    finish_with_calls,
    name_for,
    refusals,
    tool_call,
    tool_names,
)
from workers.providers.openai import OpenAIAdapter, openai_tool
from workers.providers.wire import Count, Meta, WireModel

OLLAMA_CAPABILITIES = frozenset(Feature) - {
    Feature.TOOL_CHOICE_REQUIRED,
    Feature.TOOL_CHOICE_NAMED,
    Feature.TOOL_CHOICE_NONE,
    Feature.SERIAL_TOOL_CALLS,
    Feature.IMAGE_URL,
}
OPTIONS = ("stop", "top_p", "seed", "presence_penalty", "frequency_penalty")


def ollama_message(m: ChatMessage, names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.text}
    images = []
    for image in m.images:
        if not image.is_data:
            raise Unsendable("an image by URL (Ollama takes inline image data)")
        images.append(image.data_parts()[1])
    if images:
        out["images"] = images
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "function": {"name": c.name, "arguments": args_object(c)}}
            for c in m.tool_calls
        ]
    if m.role == "tool":
        out["tool_name"] = name_for(names, m)
        out["tool_call_id"] = m.tool_call_id
    return out


def ollama_features(features: Features, body: dict[str, Any]) -> None:
    fmt = features.response_format
    if fmt is not None and fmt.wants_json:
        body["format"] = fmt.schema_ if fmt.schema_ is not None else "json"
    if features.tools:
        body["tools"] = [openai_tool(t) for t in features.tools]
    if features.tool_choice not in (None, "auto") or features.parallel_tool_calls is False:
        raise Unsendable("Ollama has no tool_choice or parallel_tool_calls")
    sampling = features.sampling.model_dump(exclude_none=True)
    for key in OPTIONS:
        if key in sampling:
            value = sampling[key]
            body["options"][key] = list(value) if key == "stop" else value


class OllamaFunction(WireModel):
    name: Any = None
    arguments: Any = None  # an object


class OllamaToolCall(WireModel):
    id: Any = None
    function: OllamaFunction


class OllamaMessage(WireModel):
    content: str | None
    tool_calls: list[OllamaToolCall] | None = None


class OllamaReply(WireModel):
    """The parts of a non-streamed `/api/chat` reply llmq reads."""

    message: OllamaMessage
    done_reason: Any = None
    prompt_eval_count: Count = 0  # Ollama omits counts that are zero
    eval_count: Count = 0
    model: Meta = None


class OllamaAdapter(OllamaEmbeds):
    """Ollama's native chat endpoint."""

    name: ClassVar[str] = LLMProvider.LOCAL
    env_keys: ClassVar[tuple[str, ...]] = ("LOCAL_LLM_API_KEY",)  # optional
    default_base_url: ClassVar[str] = "http://localhost:11434"
    simulator_dialect: ClassVar[str] = "ollama"
    dialect: ClassVar[str | None] = "ollama"
    chat_path: ClassVar[str] = "/api/chat"
    requires_key: ClassVar[bool] = False
    request_id_header: ClassVar[str | None] = None
    capabilities: ClassVar[frozenset[Feature]] = OLLAMA_CAPABILITIES

    def __init__(self, target: AdapterTarget, client: httpx.Client) -> None:
        super().__init__(target, client)
        self.url = self.base_url + self.chat_path

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        self.require(req)
        options: dict[str, Any] = {"num_predict": req.max_tokens}
        if req.temperature is not None:
            options["temperature"] = req.temperature
        names = tool_names(req.messages)
        with refusals(self):
            messages = [{"role": "system", "content": req.system}] if req.system else []
            messages.extend(ollama_message(m, names) for m in req.messages)
            body = {
                "model": req.model_id,
                "messages": messages,
                "stream": False,
                "options": options,
            }
            ollama_features(req.features, body)
        return self.post(self.url, body)

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        data = OllamaReply.model_validate(resp.json())
        if {"prompt_eval_count", "eval_count"} & data.model_fields_set:
            usage = Usage(prompt_tokens=data.prompt_eval_count, completion_tokens=data.eval_count)
        else:
            usage = Usage(estimated=True)
        calls: tuple[ToolCall, ...] = tuple(
            tool_call(i, c.id, c.function.name, c.function.arguments)
            for i, c in enumerate(data.message.tool_calls or ())
        )
        return ProviderReply(
            text=data.message.content or "",
            finish_reason=finish_with_calls(self.finish(data.done_reason), calls),
            usage=usage,
            tool_calls=calls,
            model=data.model,
        )


class LocalAdapter(OpenAIAdapter):
    """An OpenAI-compatible local server; `providers.local.dialect: ollama` picks Ollama's."""

    name: ClassVar[str] = LLMProvider.LOCAL
    usage_report: ClassVar[Any] = None  # a local server bills nothing
    admin_env_keys: ClassVar[tuple[str, ...]] = ()
    env_keys: ClassVar[tuple[str, ...]] = ("LOCAL_LLM_API_KEY",)  # optional
    default_base_url: ClassVar[str] = "http://localhost:8000/v1"
    genai_prices_id: ClassVar[str | None] = None  # your own hardware: no price
    simulator_dialect: ClassVar[str] = "local"
    batch_api: ClassVar[str | None] = None  # a local server has no batch API
    dialect: ClassVar[str | None] = "openai"
    variants: ClassVar[tuple[type[ProviderAdapter], ...]] = (OllamaAdapter,)
    requires_key: ClassVar[bool] = False
    max_tokens_field: ClassVar[str] = "max_tokens"  # what vLLM and llama.cpp read
    json_object_needs_word: ClassVar[bool] = False  # OpenAI's own rule
