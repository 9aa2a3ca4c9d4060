"""Embedding lines (issue 17): their two shapes, their per-line limits, and the model's mode.

Owns: the fields of an embedding line and their checks, raised as `BadLine` (the line loop in
`core.jsonl` adds ``line N:``):

- native: ``{"custom_id", "model"?, "input": str | [str], "dimensions"?, "input_type"?,
  "encoding_format"?, "metadata"?, "cache"?}``: a native line with `input` and neither
  `prompt` nor `messages` is an embedding line;
- OpenAI Batch: ``{"custom_id", "method": "POST", "url": "/v1/embeddings", "body": {"model"?,
  "input", "dimensions"?, "encoding_format"?: "float" | "base64"}}``.

Limits checked at submit: at most `MAX_INPUTS` inputs, each a non-empty string of at most
`MAX_INPUT_BYTES` UTF-8 bytes (token arrays are refused: llmq cannot know which tokenizer a
fallback uses). `ModeCheck` refuses a chat line for an embedding model and the reverse, and a
`dimensions` that differs from the model's configured one. Must not: do I/O or know providers.
"""

from __future__ import annotations

from typing import Any

from core import jsonl_common as common
from core.jsonl_common import BadLine, reject_unknown, type_name
from schemas.config import LLMConfig

EMBEDDINGS_URL = "/v1/embeddings"
MAX_INPUTS = 2048  # OpenAI's per-request limit, the largest of the providers'
# OpenAI's 8,192 tokens per input at ~4 bytes a token; adapters split longer lists, never texts.
MAX_INPUT_BYTES = 32_768
MAX_DIMENSIONS = 65_536
ENCODINGS = ("float", "base64")
NATIVE_EMBED_FIELDS = frozenset(
    {"custom_id", "model", "input", "dimensions", "input_type", "encoding_format"}
    | {"metadata", "cache"}
)
BODY_EMBED_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format"})


def is_native_embedding(obj: dict[str, Any]) -> bool:
    """A native line with `input` and no `prompt` or `messages` asks for embeddings."""
    return "input" in obj and "prompt" not in obj and "messages" not in obj


def native_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The JobSpec fields of a native embedding line."""
    reject_unknown(obj, NATIVE_EMBED_FIELDS)
    input_type = obj.get("input_type")
    if input_type is not None:
        common.need_str(input_type, "input_type")
    return {
        "model": obj.get("model"),
        "embedding": _request(obj, "", input_type),
        "metadata": common.metadata(obj.get("metadata"), "metadata"),
        "cache": common.cache(obj.get("cache")),
    }


def openai_fields(body: Any) -> dict[str, Any]:
    """The JobSpec fields of an OpenAI Batch `/v1/embeddings` line's `body`."""
    if not isinstance(body, dict):
        raise BadLine(f"body must be an object, got {type_name(body)}")
    reject_unknown(body, BODY_EMBED_FIELDS, "body.")
    return {"model": body.get("model"), "embedding": _request(body, "body.", None)}


def _request(obj: dict[str, Any], prefix: str, input_type: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"inputs": inputs(obj.get("input"), f"{prefix}input")}
    dims = common.integer(obj.get("dimensions"), f"{prefix}dimensions", 1, MAX_DIMENSIONS)
    if dims is not None:
        out["dimensions"] = dims
    if input_type is not None:
        out["input_type"] = input_type
    fmt = obj.get("encoding_format")
    if fmt is not None:
        if fmt not in ENCODINGS:
            raise BadLine(f'{prefix}encoding_format must be "float" or "base64", got {fmt!r}')
        out["encoding_format"] = fmt
    return out


def inputs(raw: Any, where: str) -> list[str]:
    """`input` as a list of texts, within the per-line limits."""
    if raw is None:
        raise BadLine(f"missing text: {where} is required")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list):
        raise BadLine(f"{where} must be a string or a list of strings, got {type_name(raw)}")
    if not texts:
        raise BadLine(f"{where} is an empty list")
    if len(texts) > MAX_INPUTS:
        raise BadLine(f"{where} has {len(texts)} inputs; at most {MAX_INPUTS} per line")
    for i, text in enumerate(texts):
        at = where if isinstance(raw, str) else f"{where}[{i}]"
        if not isinstance(text, str):
            why = f"{at} must be a string, got {type_name(text)} (token arrays are refused)"
            raise BadLine(why)
        if not text.strip():
            raise BadLine(f"missing text: {at} is empty")
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_INPUT_BYTES:
            raise BadLine(f"{at} is {size} bytes; at most {MAX_INPUT_BYTES} per input")
    return texts


class ModeCheck:
    """A line's kind (chat or embedding) against its model's `mode`, and its `dimensions`
    against the model's configured vector length."""

    def __init__(self, config: LLMConfig) -> None:
        self.modes: dict[str, tuple[str, int | None]] = {}
        for m in config.models:
            self.modes.setdefault(m.name, (m.mode, m.dimensions))

    def check(self, model: str, embedding: dict[str, Any] | None) -> None:
        mode, dims = self.modes.get(model, ("chat", None))
        if embedding is None and mode == "embedding":
            raise BadLine(
                f"model {model!r} is an embedding model (mode: embedding); a chat line needs "
                "a chat model"
            )
        if embedding is not None and mode != "embedding":
            raise BadLine(
                f"model {model!r} is a chat model; an embedding line (input) needs a model "
                "with mode: embedding"
            )
        asked = embedding.get("dimensions") if embedding is not None else None
        if asked is not None and dims is not None and asked != dims:
            raise BadLine(
                f"dimensions {asked} differs from model {model!r}'s configured dimensions {dims}"
            )


def native_line(
    custom_id: str, model: str | None, request: Any, metadata: dict[str, Any]
) -> dict[str, Any]:
    """An embedding spec (`schemas.embedding.EmbeddingRequest`) as a native line."""
    line: dict[str, Any] = {"custom_id": custom_id}
    if model is not None:
        line["model"] = model
    line["input"] = list(request.inputs)
    for name in ("dimensions", "input_type", "encoding_format"):
        if (value := getattr(request, name)) is not None:
            line[name] = value
    line["metadata"] = metadata
    return line
