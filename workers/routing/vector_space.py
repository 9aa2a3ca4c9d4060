"""Which deployments may serve a job by kind (issue 17): chat jobs go to chat models,
embedding jobs to embedding models, and never across vector spaces.

Owns: `refusal` (why a deployment may not serve a request's kind, or None) and the embedding
estimates routing orders by. The rule: a chat request needs `mode: chat`; an embedding request
needs `mode: embedding`, and a deployment of a fallback model only when it returns vectors of
the length the job's own model returns (the job's `dimensions`, else its model's configured
one): a vector from another space would be silently meaningless next to the others, so a
fallback whose length differs, or cannot be known, is refused. Deployments of the job's own
model share one length (config validation). Must not: do I/O, read health, prices or clock.
"""

from __future__ import annotations

import math

from schemas.config import LLMConfig, LLMModelConfig
from schemas.embedding import EmbeddingRequest

BYTES_PER_TOKEN = 4  # an ordering estimate, as for chat
INPUT_OVERHEAD_TOKENS = 1


def target_dims(model_name: str, embedding: EmbeddingRequest, config: LLMConfig) -> int | None:
    """The vector length the job's answer must have; None = not known before the reply."""
    if embedding.dimensions is not None:
        return embedding.dimensions
    return next((d.dimensions for d in config.deployments_for(model_name) if d.dimensions), None)


def refusal(
    dep: LLMModelConfig,
    model_name: str,
    embedding: EmbeddingRequest | None,
    config: LLMConfig,
) -> str | None:
    """Why `dep` may not serve a request for `model_name` of this kind, or None."""
    if embedding is None:
        return None if dep.mode == "chat" else "is an embedding model"
    if dep.mode != "embedding":
        return "is not an embedding model"
    returns = dep.dimensions or embedding.dimensions
    if embedding.dimensions is not None and returns != embedding.dimensions:
        return f"returns {returns}-dimension vectors, the job asks for {embedding.dimensions}"
    if dep.name == model_name:
        return None
    want = target_dims(model_name, embedding, config)
    if want is None or returns != want:
        got = f"{returns}-dimension" if returns else "vectors of unknown length"
        need = f"{want}-dimension vectors" if want else "vectors of an unknown length"
        return f"returns {got}{'' if returns is None else ' vectors'}; {model_name} needs {need}"
    return None


def prompt_tokens(embedding: EmbeddingRequest) -> int:
    """The ordering estimate of an embedding job's input tokens (all inputs)."""
    return sum(
        math.ceil(len(t.encode("utf-8")) / BYTES_PER_TOKEN) + INPUT_OVERHEAD_TOKENS
        for t in embedding.inputs
    )


def longest_input_tokens(embedding: EmbeddingRequest) -> int:
    """The estimate for the longest input: a deployment's context window limits each input
    of an embedding call, not their sum (they are embedded one by one)."""
    return max(math.ceil(len(t.encode("utf-8")) / BYTES_PER_TOKEN) for t in embedding.inputs)
