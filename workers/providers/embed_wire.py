"""The embedding wire formats (issue 17; request-fidelity.md section 6), one class each, which
the adapter modules derive from: the OpenAI shape (also local OpenAI-compatible servers), the
Hugging Face router's feature-extraction pipeline, Ollama's `/api/embed`, Cohere's `/v2/embed`
and Gemini's `:batchEmbedContents`.

Owns: each format's request body, reply model, per-request input limit and default input type.
Must not: do I/O (`Embeds.embed` sends through the adapter), name a provider (the adapter
modules and the registry do), or drop what a job asked for: a `dimensions` the format cannot
send is checked against the vectors that come back instead.
References: https://platform.openai.com/docs/api-reference/embeddings,
https://docs.cohere.com/reference/embed, https://ai.google.dev/api/embeddings,
https://huggingface.co/docs/inference-providers/tasks/feature-extraction,
https://github.com/ollama/ollama/blob/main/docs/api.md#generate-embeddings.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import Field

from workers.providers.embed import EmbedPart, EmbedRequest, Embeds
from workers.providers.wire import Count, Meta, WireModel


class _Item(WireModel):
    index: int
    embedding: list[Any]


class _OpenAIUsage(WireModel):
    prompt_tokens: Count = 0


class _OpenAIList(WireModel):
    data: list[_Item] = Field(min_length=1)
    model: Meta = None
    usage: _OpenAIUsage | None = None


class OpenAIEmbeds(Embeds):
    """`POST {base}/embeddings {model, input: [str], dimensions?, encoding_format: float}` ->
    `{data: [{index, embedding}], model, usage: {prompt_tokens}}`; at most 2,048 inputs."""

    embed_path: ClassVar[str] = "/embeddings"
    max_embed_inputs: ClassVar[int] = 2048

    def embed_request(self, req: EmbedRequest) -> httpx.Request:
        body: dict[str, Any] = {
            "model": req.model_id,
            "input": list(req.inputs),
            "encoding_format": "float",
        }
        dims = self.target.deployment.dimensions or req.dimensions
        if dims is not None:
            body["dimensions"] = dims
        return self.post(self.base_url + self.embed_path, body)

    def embed_part(self, resp: httpx.Response) -> EmbedPart:
        data = _OpenAIList.model_validate(resp.json())
        items = sorted(data.data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(len(items))):
            raise ValueError("data[].index is not 0..n-1")
        tokens = data.usage.prompt_tokens if data.usage is not None else None
        return EmbedPart([item.embedding for item in items], tokens or None, data.model)


class FeatureExtractionEmbeds(Embeds):
    """The Hugging Face router's `hf-inference` pipeline: `POST {router}/hf-inference/models/
    {model}/pipeline/feature-extraction {inputs: [str]}` -> a bare `[[float]]`, no usage. The
    router's OpenAI base ends in `/v1`; the pipeline sits beside it. The input limit is not
    documented; 32 per request is kept small on purpose (unverified)."""

    max_embed_inputs: ClassVar[int] = 32

    def embed_request(self, req: EmbedRequest) -> httpx.Request:
        root = self.base_url.removesuffix("/v1")
        model = quote(req.model_id, safe="/-._~")
        url = f"{root}/hf-inference/models/{model}/pipeline/feature-extraction"
        return self.post(url, {"inputs": list(req.inputs)})

    def embed_part(self, resp: httpx.Response) -> EmbedPart:
        data = resp.json()
        if not isinstance(data, list):
            raise ValueError(f"expected a list of vectors, got {type(data).__name__}")
        return EmbedPart(data, None, None)


class _OllamaEmbed(WireModel):
    embeddings: list[Any] = Field(min_length=1)
    prompt_eval_count: Count = 0
    model: Meta = None


class OllamaEmbeds(Embeds):
    """`POST {base}/api/embed {model, input: [str], dimensions?, truncate: false}` ->
    `{embeddings: [[float]], prompt_eval_count}`. `truncate: false`: a too-long input is an
    error, never silently cut (Ollama's default is to cut)."""

    embed_path: ClassVar[str] = "/api/embed"
    max_embed_inputs: ClassVar[int] = 512  # no documented limit; keeps one request bounded

    def embed_request(self, req: EmbedRequest) -> httpx.Request:
        body: dict[str, Any] = {"model": req.model_id, "input": list(req.inputs)}
        dims = self.target.deployment.dimensions or req.dimensions
        if dims is not None:
            body["dimensions"] = dims
        body["truncate"] = False
        return self.post(self.base_url + self.embed_path, body)

    def embed_part(self, resp: httpx.Response) -> EmbedPart:
        data = _OllamaEmbed.model_validate(resp.json())
        return EmbedPart(data.embeddings, data.prompt_eval_count or None, data.model)


class _CohereFloats(WireModel):
    float_: list[Any] = Field(alias="float", min_length=1)


class _CohereBilled(WireModel):
    input_tokens: Count = 0


class _CohereMeta(WireModel):
    billed_units: _CohereBilled | None = None


class _CohereEmbed(WireModel):
    embeddings: _CohereFloats
    meta: _CohereMeta | None = None


class CohereEmbeds(Embeds):
    """`POST {base}/v2/embed {model, texts, input_type, embedding_types: ["float"],
    output_dimension?, truncate: "NONE"}` -> `{embeddings: {float: [[...]]}, meta:
    {billed_units: {input_tokens}}}`; at most 96 texts; `input_type` is required."""

    embed_path: ClassVar[str] = "/v2/embed"
    max_embed_inputs: ClassVar[int] = 96
    default_input_type: ClassVar[str | None] = "search_document"

    def embed_request(self, req: EmbedRequest) -> httpx.Request:
        body: dict[str, Any] = {
            "model": req.model_id,
            "texts": list(req.inputs),
            "input_type": self.input_type(req),
            "embedding_types": ["float"],
            "truncate": "NONE",  # an over-long text is an error, never silently cut
        }
        dims = self.target.deployment.dimensions or req.dimensions
        if dims is not None:
            body["output_dimension"] = dims
        return self.post(self.base_url + self.embed_path, body)

    def embed_part(self, resp: httpx.Response) -> EmbedPart:
        data = _CohereEmbed.model_validate(resp.json())
        billed = data.meta.billed_units if data.meta is not None else None
        return EmbedPart(data.embeddings.float_, (billed.input_tokens or None) if billed else None)


class _Values(WireModel):
    values: list[Any] = Field(min_length=1)


class _BatchEmbed(WireModel):
    embeddings: list[_Values] = Field(min_length=1)


class BatchEmbedContents(Embeds):
    """`POST {base}/v1beta/models/{m}:batchEmbedContents {requests: [{model: "models/{m}",
    content: {parts: [{text}]}, taskType, outputDimensionality?}]}` -> `{embeddings:
    [{values}]}`. The reply has no token usage: the count is estimated and flagged. At most
    100 requests per batch (third-party figure, unverified)."""

    embed_path: ClassVar[str] = "/v1beta/models/{model}:batchEmbedContents"
    max_embed_inputs: ClassVar[int] = 100
    default_input_type: ClassVar[str | None] = "RETRIEVAL_DOCUMENT"

    def embed_request(self, req: EmbedRequest) -> httpx.Request:
        model = quote(req.model_id, safe="-._~")
        dims = self.target.deployment.dimensions or req.dimensions
        task = self.input_type(req)
        requests = []
        for text in req.inputs:
            item: dict[str, Any] = {
                "model": f"models/{req.model_id}",
                "content": {"parts": [{"text": text}]},
            }
            if task is not None:
                item["taskType"] = task
            if dims is not None:
                item["outputDimensionality"] = dims
            requests.append(item)
        url = self.base_url + self.embed_path.format(model=model)
        return self.post(url, {"requests": requests})

    def embed_part(self, resp: httpx.Response) -> EmbedPart:
        data = _BatchEmbed.model_validate(resp.json())
        return EmbedPart([e.values for e in data.embeddings], None, None)
