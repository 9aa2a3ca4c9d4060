"""Embedding jobs (issue 17): what an embedding line asks for, and what its result records.

Owns: `EmbeddingRequest` (the texts to embed, in order, the output length asked for, the
provider's input type / task type, and how `--format openai` should encode the vectors) and
`EmbeddingInfo` (the shape of the stored vectors: the vectors themselves are float32 bytes in
the ledger's `job_vectors` table, never JSON). Must not: do I/O or know any provider; the per
line limits with their `line N:` errors live in `core.jsonl_embed`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MODES = ("chat", "embedding")  # `mode:` of a model in llm_config.yaml; chat is the default
ModelMode = Literal["chat", "embedding"]
EncodingFormat = Literal["float", "base64"]


def _is_none(value: Any) -> bool:
    return value is None


InputText = Annotated[str, Field(min_length=1)]


class EmbeddingRequest(BaseModel):
    """One embedding job: `inputs` in the order their vectors come back.

    `dimensions`: the vector length asked for (None = the deployment's). `input_type`: the
    provider's input type or task type (None = the model's configured one, else the adapter's
    default). `encoding_format`: how `--format openai` writes the vectors (floats unless
    "base64"); it does not change the vectors, so it is not part of the cache key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: tuple[InputText, ...] = Field(min_length=1)
    dimensions: int | None = Field(default=None, gt=0, le=65_536, exclude_if=_is_none)
    input_type: str | None = Field(default=None, min_length=1, exclude_if=_is_none)
    encoding_format: EncodingFormat | None = Field(default=None, exclude_if=_is_none)


class EmbeddingInfo(BaseModel):
    """What a succeeded embedding job's result says about its vectors (kept as float32
    bytes beside the job: `count` vectors of `dimensions` floats, in input order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dimensions: int = Field(gt=0)
    count: int = Field(gt=0)
