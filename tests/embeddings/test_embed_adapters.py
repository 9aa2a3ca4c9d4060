"""Embedding adapters against the simulator over HTTP (issue 17): each provider's request
body, the split of long input lists at its per-request limit and the join in order, usage read
or estimated (never 0), and a reply in another vector length refused as malformed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers.llm_config import config_dict

from core.errors import MalformedReply
from schemas.config import LLMConfig
from simulator.providers.embeddings import vector
from workers.providers import build_adapter
from workers.providers.embed import EmbedReply, EmbedRequest, estimate_tokens

TEXTS = tuple(f"text number {i}" for i in range(250))


@pytest.fixture()
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def embed(sim, http, provider: str, inputs=TEXTS, **model: Any) -> EmbedReply:  # type: ignore[no-untyped-def]
    entry = {"name": "e", "provider": provider, "model_id": "m", "mode": "embedding", **model}
    config = LLMConfig.model_validate(config_dict(sim.url, [entry]))
    adapter = build_adapter(config.models[0], config, http)
    return adapter.embed(EmbedRequest("m", tuple(inputs)))  # type: ignore[attr-defined]


def bodies(sim, provider: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [e["request"]["body"] for e in sim.requests(provider)]


@pytest.mark.parametrize(
    ("provider", "per_request", "reported"),
    [("openai", 2048, True), ("cohere", 96, True), ("google", 100, False),
     ("huggingface", 32, False), ("local", 2048, True)],
)  # fmt: skip
def test_split_at_the_limit_and_joined_in_order(sim, http, provider, per_request, reported) -> None:  # type: ignore[no-untyped-def]
    dims = 384 if provider == "huggingface" else 16  # HF's pipeline cannot be asked a length
    reply = embed(sim, http, provider, dimensions=dims)
    calls = -(-len(TEXTS) // per_request)
    assert reply.calls == calls and len(sim.requests(provider)) == calls
    assert reply.dimensions == dims
    assert [v.tolist() for v in reply.vectors] == [vector("m", t, dims) for t in TEXTS]
    assert reply.usage.estimated is (not reported)
    if reported:
        assert reply.usage.prompt_tokens > 0
    else:  # no usage in the reply: estimated from the inputs, flagged, never 0
        assert reply.usage.prompt_tokens == estimate_tokens(TEXTS) > 0


def test_parts_are_small_enough_for_the_reply_bound(sim, http) -> None:  # type: ignore[no-untyped-def]
    # 2,048 inputs fit one OpenAI request, but 2,048 x 1,536 floats are ~75 MB of JSON: the
    # parts are cut so each reply stays under max_reply_bytes (10 MB by default)
    reply = embed(sim, http, "openai", TEXTS, dimensions=1536)
    per_request = 10_000_000 // (1536 * 24)
    assert reply.calls == -(-len(TEXTS) // per_request) == 1 + len(TEXTS) // per_request
    assert [v.tolist() for v in reply.vectors] == [vector("m", t, 1536) for t in TEXTS]


def test_cohere_body_input_type_and_dimensions(sim, http) -> None:  # type: ignore[no-untyped-def]
    embed(sim, http, "cohere", ["a"], dimensions=256)
    embed(sim, http, "cohere", ["b"], input_type="clustering")
    first, second = bodies(sim, "cohere")
    assert first == {
        "model": "m",
        "texts": ["a"],
        "input_type": "search_document",  # required by Cohere: the default
        "embedding_types": ["float"],
        "truncate": "NONE",
        "output_dimension": 256,
    }
    assert second["input_type"] == "clustering" and "output_dimension" not in second


def test_gemini_batch_embed_contents_body(sim, http) -> None:  # type: ignore[no-untyped-def]
    reply = embed(sim, http, "google", ["a", "b"], dimensions=64, input_type="CLUSTERING")
    (entry,) = sim.requests("google")
    assert entry["request"]["path"].endswith("/v1beta/models/m:batchEmbedContents")
    assert entry["request"]["body"]["requests"][1] == {
        "model": "models/m",
        "content": {"parts": [{"text": "b"}]},
        "taskType": "CLUSTERING",
        "outputDimensionality": 64,
    }
    assert reply.dimensions == 64 and reply.usage.estimated


def test_openai_body(sim, http) -> None:  # type: ignore[no-untyped-def]
    embed(sim, http, "openai", ["a"], dimensions=8)
    assert bodies(sim, "openai") == [
        {"model": "m", "input": ["a"], "encoding_format": "float", "dimensions": 8}
    ]


def test_a_reply_of_another_length_is_malformed(sim, http) -> None:  # type: ignore[no-untyped-def]
    # the HF pipeline cannot be asked for a length: it answers 384, the deployment says 64
    with pytest.raises(MalformedReply, match="384 dimensions, expected 64"):
        embed(sim, http, "huggingface", ["a"], dimensions=64)


def test_a_provider_error_is_classified(sim, http) -> None:  # type: ignore[no-untyped-def]
    from core.errors import ProviderUnavailable

    sim.configure("cohere", down=True)
    with pytest.raises(ProviderUnavailable):
        embed(sim, http, "cohere", ["a"])
