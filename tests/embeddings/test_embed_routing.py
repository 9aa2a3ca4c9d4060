"""Vector-space routing (issue 17), pure and table-driven: chat jobs go to chat models,
embedding jobs to embedding models, and a fallback is taken only into the same vector length;
a fallback to a deployment with other dimensions (or unknown ones) is refused."""

from __future__ import annotations

import pytest

from schemas.config import LLMConfig
from schemas.embedding import EmbeddingRequest
from schemas.job import ChatMessage
from workers.routing.health import HealthSnapshot
from workers.routing.select import RouteRequest, rank_candidates
from workers.routing.vector_space import refusal


def config() -> LLMConfig:
    return LLMConfig(
        models=[
            {"name": "chat", "provider": "openai"},
            {"name": "emb", "provider": "openai", "mode": "embedding", "dimensions": 1536},
            {"name": "emb", "provider": "local", "mode": "embedding", "dimensions": 1536},
            {"name": "same", "provider": "cohere", "mode": "embedding", "dimensions": 1536},
            {"name": "other", "provider": "google", "mode": "embedding", "dimensions": 768},
            {"name": "unknown", "provider": "huggingface", "mode": "embedding"},
            {"name": "free", "provider": "openai", "model_id": "f", "mode": "embedding"},
        ],
        fallbacks={"emb": ["same", "other", "unknown", "chat"], "free": ["same", "unknown"]},
    )


EMB = EmbeddingRequest(inputs=("a", "b"))


def plan(model: str, embedding: EmbeddingRequest | None) -> list[str]:
    cfg = config()
    has_key = {m.deployment_id: True for m in cfg.models}
    messages = () if embedding else (ChatMessage(role="user", content="hi"),)
    req = RouteRequest(model, messages, embedding=embedding)
    cands = rank_candidates(req, cfg, HealthSnapshot({}), {}, has_key, 0.0)
    return [c.deployment_id for c in cands]


def test_fallback_keeps_to_the_same_dimensions() -> None:
    assert plan("emb", EMB) == ["openai/emb", "local/emb", "cohere/same"]


def test_fallback_from_down_provider_skips_other_dimensions() -> None:
    cfg = config()
    has_key = {m.deployment_id: m.provider != "openai" for m in cfg.models}
    req = RouteRequest("emb", (), embedding=EMB)
    ids = [c.deployment_id for c in rank_candidates(req, cfg, HealthSnapshot({}), {}, has_key, 0.0)]
    assert "google/other" not in ids and ids == ["local/emb", "cohere/same"]


def test_asked_dimensions_decide_the_space_when_the_model_has_none() -> None:
    # a deployment with no configured length is asked for the job's (and its reply's length
    # is checked by the adapter: a vector of another length fails the attempt, never lands)
    assert plan("free", EmbeddingRequest(inputs=("a",), dimensions=1536)) == [
        "openai/f",
        "cohere/same",
        "huggingface/unknown",
    ]
    assert plan("free", EMB) == ["openai/f"]  # unknown length: no fallback across models


def test_chat_jobs_never_reach_embedding_models() -> None:
    assert plan("chat", None) == ["openai/chat"]


CASES = [
    # (deployment name, job model, embedding?, dimensions asked, refused?)
    ("chat", "chat", False, None, False),
    ("emb", "emb", False, None, True),  # a chat job on an embedding model
    ("chat", "emb", True, None, True),  # an embedding job on a chat fallback
    ("emb", "emb", True, None, False),
    ("same", "emb", True, None, False),
    ("other", "emb", True, None, True),  # 768 vs 1536: another vector space
    ("unknown", "emb", True, None, True),  # cannot know: refused
    ("emb", "emb", True, 256, True),  # asked 256, the deployment returns 1536
    ("unknown", "free", True, 384, False),  # no configured length: the asked one is sent
]


@pytest.mark.parametrize(("dep_name", "model", "embedding", "dims", "refused"), CASES)
def test_refusal_table(dep_name, model, embedding, dims, refused) -> None:  # type: ignore[no-untyped-def]
    cfg = config()
    dep = cfg.deployments_for(dep_name)[0]
    req = EmbeddingRequest(inputs=("x",), dimensions=dims) if embedding else None
    assert (refusal(dep, model, req, cfg) is not None) is refused


def test_deployments_sharing_a_name_must_share_dimensions_and_mode() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        LLMConfig(
            models=[
                {"name": "e", "provider": "openai", "mode": "embedding", "dimensions": 8},
                {"name": "e", "provider": "local", "mode": "embedding", "dimensions": 9},
            ]
        )
    with pytest.raises(ValueError, match="mode"):
        LLMConfig(
            models=[
                {"name": "e", "provider": "openai", "mode": "embedding"},
                {"name": "e", "provider": "local"},
            ]
        )
    with pytest.raises(ValueError, match="embedding"):
        LLMConfig(models=[{"name": "c", "provider": "openai", "dimensions": 8}])
