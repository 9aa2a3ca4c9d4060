"""The simulated providers' embedding endpoints (issue 17): each dialect's route, request
shape, per-request input limit, reply shape and usage fields.

Owns: `EmbedWire` (parse a body into `EmbedCall`, render vectors) with one subclass per wire
format, `EMBED_WIRES` (chat dialect name -> its embedding wire) and `vector` (the deterministic
vector of a text: the same model, text and length always give the same floats, each a
multiple of 2**-15, so it survives float32 storage exactly). Usage as each provider gives it:
OpenAI `usage`, Cohere `meta.billed_units`, Ollama `prompt_eval_count`; none from Gemini or
the Hugging Face feature-extraction pipeline. Must not: judge auth, behaviour or rate limits
(`simulator/embed.py` does, the same for every dialect).
"""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass
from typing import Any, ClassVar

from simulator.providers.base import invalid

_SCALE = 1.0 / 32768.0


@dataclass(slots=True)
class EmbedCall:
    """One embedding request, provider-neutral."""

    model: str
    texts: list[str]
    dimensions: int | None = None


def vector(model: str, text: str, dims: int) -> list[float]:
    """A deterministic vector for (model, text, dims)."""
    seed = hashlib.shake_256(f"{model}\x1f{text}".encode("utf-8", "surrogatepass"))
    values = array("h")
    values.frombytes(seed.digest(2 * dims))
    return [v * _SCALE for v in values]


def tokens_of(texts: list[str]) -> int:
    """The simulated input token count: ~4 bytes a token, at least 1 per text."""
    return sum(max((len(t.encode("utf-8", "surrogatepass")) + 3) // 4, 1) for t in texts)


def _texts(value: Any, name: str) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise invalid(f"{name}: must be a string or a non-empty array of strings")
    if not all(isinstance(t, str) and t for t in texts):
        raise invalid(f"{name}: each item must be a non-empty string")
    return texts


def _dims(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8192:
        raise invalid(f"{name}: must be an integer between 1 and 8192")
    return value


class EmbedWire:
    """One embedding wire format. `path` is below the endpoint (`/{name}`)."""

    path: ClassVar[str] = ""
    max_inputs: ClassVar[int | None] = None  # None = no per-request limit
    default_dims: ClassVar[int] = 768

    def parse(self, body: Any, match: dict[str, str]) -> EmbedCall:
        raise NotImplementedError

    def render(self, call: EmbedCall, vectors: list[list[float]], request_id: str) -> Any:
        raise NotImplementedError

    def check_limit(self, call: EmbedCall) -> None:
        if self.max_inputs is not None and len(call.texts) > self.max_inputs:
            raise invalid(
                f"too many inputs: {len(call.texts)} in one request; at most {self.max_inputs}"
            )


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required")
    return model


class OpenAIEmbedWire(EmbedWire):
    path = "/v1/embeddings"
    max_inputs = 2048
    default_dims = 1536

    def parse(self, body: Any, match: dict[str, str]) -> EmbedCall:
        body = _object(body)
        if body.get("encoding_format", "float") != "float":
            raise invalid("encoding_format: the simulator answers float only")
        texts = _texts(body.get("input"), "input")
        return EmbedCall(_model(body), texts, _dims(body.get("dimensions"), "dimensions"))

    def render(self, call: EmbedCall, vectors: list[list[float]], request_id: str) -> Any:
        tokens = tokens_of(call.texts)
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": call.model, "usage": usage}


class FeatureExtractionWire(EmbedWire):
    path = "/hf-inference/models/{model:.+}/pipeline/feature-extraction"
    max_inputs = 32
    default_dims = 384

    def parse(self, body: Any, match: dict[str, str]) -> EmbedCall:
        body = _object(body)
        return EmbedCall(match.get("model", ""), _texts(body.get("inputs"), "inputs"))

    def render(self, call: EmbedCall, vectors: list[list[float]], request_id: str) -> Any:
        return vectors  # a bare list, no usage


class OllamaEmbedWire(EmbedWire):
    path = "/api/embed"
    max_inputs = None

    def parse(self, body: Any, match: dict[str, str]) -> EmbedCall:
        body = _object(body)
        texts = _texts(body.get("input"), "input")
        return EmbedCall(_model(body), texts, _dims(body.get("dimensions"), "dimensions"))

    def render(self, call: EmbedCall, vectors: list[list[float]], request_id: str) -> Any:
        return {
            "model": call.model,
            "embeddings": vectors,
            "total_duration": 1000,
            "load_duration": 10,
            "prompt_eval_count": tokens_of(call.texts),
        }


COHERE_INPUT_TYPES = frozenset(
    {"search_document", "search_query", "classification", "clustering", "image"}
)


class CohereEmbedWire(EmbedWire):
    path = "/v2/embed"
    max_inputs = 96
    default_dims = 1024

    def parse(self, body: Any, match: dict[str, str]) -> EmbedCall:
        body = _object(body)
        if body.get("input_type") not in COHERE_INPUT_TYPES:
            raise invalid("input_type: required, one of " + ", ".join(sorted(COHERE_INPUT_TYPES)))
        if body.get("embedding_types") != ["float"]:
            raise invalid('embedding_types: the simulator answers ["float"] only')
        dims = _dims(body.get("output_dimension"), "output_dimension")
        return EmbedCall(_model(body), _texts(body.get("texts"), "texts"), dims)

    def render(self, call: EmbedCall, vectors: list[list[float]], request_id: str) -> Any:
        return {
            "id": request_id,
            "embeddings": {"float": vectors},
            "texts": call.texts,
            "meta": {"billed_units": {"input_tokens": tokens_of(call.texts)}},
            "response_type": "embeddings_by_type",
        }


class BatchEmbedWire(EmbedWire):
    path = "/v1beta/models/{model}:batchEmbedContents"
    max_inputs = 100
    default_dims = 768

    def parse(self, body: Any, match: dict[str, str]) -> EmbedCall:
        requests = _object(body).get("requests")
        if not isinstance(requests, list) or not requests:
            raise invalid("requests: must be a non-empty array")
        model = match.get("model", "")
        texts, dims = [], None
        for i, item in enumerate(requests):
            if not isinstance(item, dict) or item.get("model") != f"models/{model}":
                raise invalid(f"requests[{i}].model: must be models/{model}")
            parts = (item.get("content") or {}).get("parts")
            if not isinstance(parts, list) or len(parts) != 1:
                raise invalid(f"requests[{i}].content.parts: one text part expected")
            texts.extend(_texts(parts[0].get("text"), f"requests[{i}].content.parts[0].text"))
            dims = _dims(item.get("outputDimensionality"), "outputDimensionality") or dims
        return EmbedCall(model, texts, dims)

    def render(self, call: EmbedCall, vectors: list[list[float]], request_id: str) -> Any:
        return {"embeddings": [{"values": v} for v in vectors]}  # no usage in the reply


# Chat dialect name -> its embedding wire (a dialect not listed has no embeddings).
EMBED_WIRES: dict[str, EmbedWire] = {
    "openai": OpenAIEmbedWire(),
    "local": OpenAIEmbedWire(),
    "huggingface": FeatureExtractionWire(),
    "ollama": OllamaEmbedWire(),
    "cohere": CohereEmbedWire(),
    "google": BatchEmbedWire(),
}
