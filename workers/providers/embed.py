"""Embedding calls (issue 17), provider-neutral: split an input list into the provider's
per-request limit, send each part, and join the vectors back in input order.

Owns: `EmbedRequest`, `EmbedPart` (one reply, parsed), `EmbedReply` (the joined result),
`Embeds` (the adapter base an embedding-capable adapter derives from: `embed()` and the checks
every reply passes: one vector per input, finite numbers, one length, the deployment's
configured length), `can_embed` and `estimate_tokens` (the count booked, flagged estimated,
when a provider reports none; never 0). Must not: know any provider's wire format (each one's
body and reply live in `embed_wire.py`, picked by the adapter module), touch the ledger or
Redis, or send anything but through `ProviderAdapter.exchange`.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import httpx

from core.secrets_scrub import scrub
from schemas.job import Usage
from workers.providers.base import ProviderAdapter, RateLimitInfo

PER_INPUT_OVERHEAD = 1  # tokens a provider may add per input (a start or end marker)
# A float in a JSON reply takes up to ~24 bytes ("-0.012345678901234567, "); a part's reply
# must fit `max_reply_bytes`, so a part holds at most that many floats' worth of vectors.
JSON_BYTES_PER_FLOAT = 24
UNKNOWN_DIMS = 3072  # the longest common embedding, assumed when the length is not known


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    """One embedding call as the pipeline asks it: every input of the job, in order.
    `dimensions`: the vector length to ask for (None = the model's own); `input_type`: the
    provider's input or task type (None = the adapter's default)."""

    model_id: str
    inputs: tuple[str, ...]
    dimensions: int | None = None
    input_type: str | None = None


@dataclass(frozen=True, slots=True)
class EmbedPart:
    """One reply, parsed: a vector per input sent, and the input tokens it reported (None =
    the provider reports none)."""

    vectors: Sequence[Sequence[float]]
    input_tokens: int | None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class EmbedReply:
    """Every input's vector in input order (float32 arrays), with the usage of all calls."""

    vectors: list[array]
    dimensions: int
    usage: Usage
    model: str | None
    request_id: str | None
    rate_limits: RateLimitInfo | None
    latency_ms: int
    calls: int  # requests made: more than one when the inputs exceeded the per-request limit


def estimate_tokens(inputs: Sequence[str]) -> int:
    """~4 UTF-8 bytes a token, rounded up, plus the per-input overhead; at least 1 per input."""
    return sum(max((len(t.encode("utf-8")) + 3) // 4, 1) + PER_INPUT_OVERHEAD for t in inputs)


def can_embed(adapter: type[ProviderAdapter]) -> bool:
    """True when this adapter class can make embedding calls."""
    return issubclass(adapter, Embeds)


def parts(inputs: Sequence[str], limit: int) -> list[tuple[str, ...]]:
    """`inputs` cut into consecutive runs of at most `limit` (order kept)."""
    step = max(limit, 1)
    return [tuple(inputs[i : i + step]) for i in range(0, len(inputs), step)]


class Embeds(ProviderAdapter):
    """An adapter that can embed: a wire module sets `max_embed_inputs` and implements
    `embed_request` (one part's request) and `embed_part` (its reply)."""

    max_embed_inputs: ClassVar[int] = 96  # inputs per request; longer lists are split
    default_input_type: ClassVar[str | None] = None  # sent when neither job nor config names one

    def embed_request(self, req: EmbedRequest) -> httpx.Request:
        raise NotImplementedError

    def embed_part(self, resp: httpx.Response) -> EmbedPart:
        raise NotImplementedError

    def input_type(self, req: EmbedRequest) -> str | None:
        return req.input_type or self.target.deployment.input_type or self.default_input_type

    def inputs_per_request(self, dims: int | None) -> int:
        """The provider's per-request limit, lowered so that a reply of `dims`-long vectors
        fits the reply-size bound (`providers.<name>.max_reply_bytes`): 2,048 vectors of 1,536
        floats are ~75 MB of JSON, far above the 10 MB default."""
        per_vector = (dims or UNKNOWN_DIMS) * JSON_BYTES_PER_FLOAT
        fits = self.target.provider.max_reply_bytes // per_vector
        return max(1, min(self.max_embed_inputs, fits))

    def embed(self, req: EmbedRequest, key_fp: str | None = None) -> EmbedReply:
        """Embed every input of `req` (split and joined in order); raise an
        `LLMProviderError` as `complete` does. A part that fails fails the whole call."""
        return self.with_key(lambda: self._embed_all(req), key_fp)

    def _embed_all(self, req: EmbedRequest) -> EmbedReply:
        want = self.target.deployment.dimensions or req.dimensions
        vectors: list[array] = []
        reported: int | None = 0
        latency = 0
        model = request_id = None
        limits = None
        chunks = parts(req.inputs, self.inputs_per_request(want))
        for chunk in chunks:
            resp, ms = self.exchange(self.embed_request(replace(req, inputs=chunk)))
            latency += ms
            try:
                part = self.embed_part(resp)
                got = _checked(part.vectors, len(chunk), want or _first_len(vectors))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                raise self.malformed(str(exc), resp) from exc
            vectors.extend(got)
            # None: this provider reports no count. A negative (untrusted) count stays in the
            # sum so the usage check books the attempt at its reservation (issue 20).
            count = part.input_tokens
            reported = None if reported is None or count is None else reported + count
            model = model or part.model
            request_id = request_id or self.request_id(resp)
            limits = self.rate_limits(resp.headers) or limits
        if reported is None:  # never booked as 0 tokens: estimated, and flagged so
            usage = Usage(prompt_tokens=estimate_tokens(req.inputs), estimated=True)
        else:
            usage = Usage(prompt_tokens=reported)
        return EmbedReply(
            vectors=vectors,
            dimensions=len(vectors[0]),
            usage=usage,
            model=scrub(model)[:200] if isinstance(model, str) else None,
            request_id=request_id,
            rate_limits=limits,
            latency_ms=latency,
            calls=len(chunks),
        )


def _first_len(vectors: list[array]) -> int | None:
    return len(vectors[0]) if vectors else None


def _checked(vectors: Sequence[Sequence[float]], count: int, dims: int | None) -> list[array]:
    """The reply's vectors as float32 arrays: exactly `count`, finite, all of length `dims`
    (or of the first one's length when None)."""
    if not isinstance(vectors, list) or len(vectors) != count:
        got = len(vectors) if isinstance(vectors, list) else type(vectors).__name__
        raise ValueError(f"{got} vectors for {count} inputs")
    out = []
    for i, raw in enumerate(vectors):
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"vector {i} is not a non-empty list of numbers")
        vector = array("f", raw)  # TypeError on anything but numbers
        if not math.isfinite(sum(vector)):
            raise ValueError(f"vector {i} holds a non-finite number")
        dims = dims or len(vector)
        if len(vector) != dims:
            raise ValueError(f"vector {i} has {len(vector)} dimensions, expected {dims}")
        out.append(vector)
    return out
