"""Self-hosted servers: OpenAI-compatible (vLLM, llama.cpp, LM Studio; the default dialect) and
Ollama's native `POST {base}/api/chat` (`providers.local.dialect: ollama`).

Owns: the two local dialects. The key is optional (sent as Bearer only when configured);
there are no rate-limit headers. Ollama: `stream: false` (its default is an NDJSON stream),
`options.num_predict` for max tokens, `done_reason`, `prompt_eval_count`/`eval_count`
(omitted when zero). References: https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html,
https://github.com/ollama/ollama/blob/main/docs/api.md. Must not: do I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from schemas.config import LLMProvider
from schemas.job import Usage
from workers.providers.base import AdapterTarget, ProviderAdapter, ProviderReply, ProviderRequest
from workers.providers.openai import OpenAIAdapter, openai_messages
from workers.providers.wire import Count, Meta, WireModel


class OllamaMessage(WireModel):
    content: str | None


class OllamaReply(WireModel):
    """The parts of a non-streamed `/api/chat` reply llmq reads."""

    message: OllamaMessage
    done_reason: Any = None
    prompt_eval_count: Count = 0  # Ollama omits counts that are zero
    eval_count: Count = 0
    model: Meta = None


class OllamaAdapter(ProviderAdapter):
    """Ollama's native chat endpoint."""

    name: ClassVar[str] = LLMProvider.LOCAL
    env_keys: ClassVar[tuple[str, ...]] = ("LOCAL_LLM_API_KEY",)  # optional
    default_base_url: ClassVar[str] = "http://localhost:11434"
    simulator_dialect: ClassVar[str] = "ollama"
    dialect: ClassVar[str | None] = "ollama"
    chat_path: ClassVar[str] = "/api/chat"
    requires_key: ClassVar[bool] = False
    request_id_header: ClassVar[str | None] = None

    def __init__(self, target: AdapterTarget, client: httpx.Client) -> None:
        super().__init__(target, client)
        self.url = self.base_url + self.chat_path

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        options: dict[str, Any] = {"num_predict": req.max_tokens}
        if req.temperature is not None:
            options["temperature"] = req.temperature
        body = {
            "model": req.model_id,
            "messages": openai_messages(req),
            "stream": False,
            "options": options,
        }
        return self.post(self.url, body)

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        data = OllamaReply.model_validate(resp.json())
        if {"prompt_eval_count", "eval_count"} & data.model_fields_set:
            usage = Usage(prompt_tokens=data.prompt_eval_count, completion_tokens=data.eval_count)
        else:
            usage = Usage(estimated=True)
        return ProviderReply(
            text=data.message.content or "",
            finish_reason=self.finish(data.done_reason),
            usage=usage,
            model=data.model,
        )


class LocalAdapter(OpenAIAdapter):
    """An OpenAI-compatible local server; `providers.local.dialect: ollama` picks Ollama's."""

    name: ClassVar[str] = LLMProvider.LOCAL
    env_keys: ClassVar[tuple[str, ...]] = ("LOCAL_LLM_API_KEY",)  # optional
    default_base_url: ClassVar[str] = "http://localhost:8000/v1"
    genai_prices_id: ClassVar[str | None] = None  # your own hardware: no price
    simulator_dialect: ClassVar[str] = "local"
    dialect: ClassVar[str | None] = "openai"
    variants: ClassVar[tuple[type[ProviderAdapter], ...]] = (OllamaAdapter,)
    requires_key: ClassVar[bool] = False
    max_tokens_field: ClassVar[str] = "max_tokens"  # what vLLM and llama.cpp read
