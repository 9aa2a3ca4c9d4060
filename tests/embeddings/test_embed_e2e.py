"""End to end (issue 17): a file of `/v1/embeddings` lines runs through real Celery worker
processes on each provider's simulated embeddings endpoint; results come back in input order,
as float32 bytes in the ledger, in llmq's format and OpenAI's (parsed by the `openai` SDK's
`CreateEmbeddingResponse`); a second identical run costs $0 and reaches no provider."""

from __future__ import annotations

import base64
import json
import uuid
from array import array
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers.jobs import wait_settled
from helpers.llm_config import load_test_config, model
from openai.types import CreateEmbeddingResponse
from sqlalchemy import text

from producer.client import Client
from producer.openai_format import openai_line
from simulator.providers.embeddings import vector

PRICED = {"input_cost_per_mtok": "0.02", "output_cost_per_mtok": "0"}
TEXTS = [f"backlog item {i}: the login page times out" for i in range(130)]


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def openai_lines(model_name: str, n_lines: int = 3, **body: Any) -> list[dict[str, Any]]:
    """Line 0 carries all of TEXTS (more than Cohere's 96 or Gemini's 100 per request)."""
    inputs: list[Any] = [TEXTS, "one text", ["two", "texts"]][:n_lines]
    return [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": model_name, "input": inp, **body},
        }
        for i, inp in enumerate(inputs)
    ]


def run(rig, client: Client, source: Path) -> uuid.UUID:  # type: ignore[no-untyped-def]
    batch_id = client.submit(source)
    counts = wait_settled(rig.engine, batch_id, timeout_s=120, on_timeout=rig.logs)
    assert counts == {"succeeded": sum(1 for _ in source.open())}, rig.logs()
    return batch_id


def expected(model_id: str, texts: list[str], dims: int) -> list[list[float]]:
    return [vector(model_id, t, dims) for t in texts]


# (provider, simulated dims when no dimensions are configured, usage reported?)
PROVIDERS = [
    ("openai", 1536, True),
    ("cohere", 1024, True),
    ("google", 768, False),
    ("huggingface", 384, False),
    ("local", 1536, True),
]


@pytest.mark.parametrize(("provider", "dims", "reported"), PROVIDERS)
def test_each_provider_embeds_a_file_in_input_order(rig, sim, provider, dims, reported) -> None:  # type: ignore[no-untyped-def]
    config = rig.configure(
        [model("emb", provider, model_id="emb-1", mode="embedding", dimensions=dims, **PRICED)]
    )
    rig.start(concurrency=2)
    source = write_jsonl(rig.tmp_path / "in.jsonl", openai_lines("emb"))
    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        batch_id = run(rig, client, source)
        results = list(client.iter_results(batch_id))

    inputs = [TEXTS, ["one text"], ["two", "texts"]]
    for result, texts in zip(results, inputs, strict=True):
        response = result["response"]
        assert response["embeddings"] == expected("emb-1", texts, dims)  # exact: float32-safe
        assert response["dimensions"] == dims and response["provider"] == provider
        assert result["usage"]["prompt_tokens"] > 0  # never 0, even when estimated
        assert response.get("usage_estimated", False) is (not reported)
    # per-request limits: the 130 texts went in several requests on Cohere (96), Gemini (100)
    # and the HF pipeline (32), joined back in order (checked above)
    requests = {"cohere": 2 + 2, "google": 2 + 2, "huggingface": 5 + 2}.get(provider, 3)
    assert sim.stats()["total_requests"] == requests

    with rig.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT v.count, v.dims, octet_length(v.data), a.usage_estimated, a.prompt_tokens"
                " FROM job_vectors v JOIN jobs j ON j.id = v.job_id"
                " JOIN attempts a ON a.job_id = j.id WHERE j.custom_id = 'e0'"
            )
        ).one()
    assert rows[:3] == (130, dims, 130 * dims * 4)  # float32 bytes, not JSON
    assert rows[3] is (not reported) and rows[4] > 0


def test_second_identical_run_costs_nothing(rig, sim) -> None:  # type: ignore[no-untyped-def]
    # temperature 0.7 would make a chat job uncacheable; embeddings are cached regardless
    config = rig.configure(
        [model("emb", "openai", mode="embedding", dimensions=64, temperature=0.7, **PRICED)]
    )
    rig.start(concurrency=2)
    source = write_jsonl(rig.tmp_path / "in.jsonl", openai_lines("emb"))
    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        first = run(rig, client, source)
        calls = sim.stats()["total_requests"]
        second = run(rig, client, source)
        assert sim.stats()["total_requests"] == calls == 3
        one, two = client.get_batch(first), client.get_batch(second)
        vectors_1 = [r["response"]["embeddings"] for r in client.iter_results(first)]
        vectors_2 = [r["response"]["embeddings"] for r in client.iter_results(second)]
    assert one.cost_usd > 0 and two.cost_usd == Decimal(0)
    assert two.cache_hits == 3 and vectors_2 == vectors_1


def test_openai_format_parses_as_create_embedding_response(rig, sim) -> None:  # type: ignore[no-untyped-def]
    config = rig.configure([model("emb", "openai", mode="embedding", dimensions=32, **PRICED)])
    rig.start(concurrency=2)
    lines = openai_lines("emb", 2) + [
        {
            **line,
            "custom_id": line["custom_id"] + "-b64",
            "body": {**line["body"], "encoding_format": "base64"},
        }  # fmt: skip
        for line in openai_lines("emb", 2)
    ]
    source = write_jsonl(rig.tmp_path / "in.jsonl", lines)
    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        results = list(client.iter_results(run(rig, client, source)))

    bodies, raw_b64 = {}, {}
    for result in results:
        line, ok = openai_line(result, 1_700_000_000)
        assert ok
        body = line["response"]["body"]
        if line["custom_id"].endswith("-b64"):
            # what the SDK does with a base64 reply: float32 little-endian bytes -> floats
            raw_b64[line["custom_id"]] = [d["embedding"] for d in body["data"]]
            for d in body["data"]:
                d["embedding"] = array("f", base64.b64decode(d["embedding"])).tolist()
        bodies[line["custom_id"]] = CreateEmbeddingResponse.model_validate(body)
    floats = bodies["e0"]
    assert [d.index for d in floats.data] == list(range(len(TEXTS)))
    assert [d.embedding for d in floats.data] == expected("emb", TEXTS, 32)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    assert floats.object == "list" and floats.model == "emb"
    assert all(isinstance(v, str) for v in raw_b64["e0-b64"])  # base64 text on the wire
    assert bodies["e0-b64"].data == floats.data and bodies["e1-b64"].data == bodies["e1"].data


def emb_models(**dims: int) -> list[dict[str, Any]]:
    """One embedding model per provider: name "emb-<provider>", the given dimensions."""
    return [
        model(f"emb-{p}", p, model_id=f"m-{p}", mode="embedding", dimensions=d, **PRICED)
        for p, d in dims.items()
    ]


def sim_requests(sim, provider: str) -> int:  # type: ignore[no-untyped-def]
    return sim.stats()["providers"].get(provider, {}).get("requests", 0)


def test_fallback_from_a_down_provider_keeps_the_vector_space(rig, sim) -> None:  # type: ignore[no-untyped-def]
    # the 32-dimension fallback comes first in the list and must still never be used
    config = rig.configure(
        emb_models(openai=64, google=32, cohere=64),
        fallbacks={"emb-openai": ["emb-google", "emb-cohere"]},
    )
    sim.configure("openai", down=True)
    rig.start(concurrency=2)
    source = write_jsonl(rig.tmp_path / "in.jsonl", openai_lines("emb-openai"))
    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        results = list(client.iter_results(run(rig, client, source)))
    assert {r["response"]["provider"] for r in results} == {"cohere"}
    assert results[0]["response"]["embeddings"] == expected("m-cohere", TEXTS, 64)
    assert sim_requests(sim, "google") == 0 and sim_requests(sim, "openai") >= 1


def test_fallback_to_other_dimensions_is_refused(rig, sim) -> None:  # type: ignore[no-untyped-def]
    config = rig.configure(
        emb_models(openai=64, google=32),
        fallbacks={"emb-openai": ["emb-google"]},
        routing={"max_attempts": 2},
    )
    sim.configure("openai", down=True)
    rig.start(concurrency=2)
    source = write_jsonl(rig.tmp_path / "in.jsonl", openai_lines("emb-openai", 1))
    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        batch_id = client.submit(source)
        counts = wait_settled(rig.engine, batch_id, timeout_s=120, on_timeout=rig.logs)
        (result,) = client.iter_results(batch_id)
    assert counts == {"failed": 1}, rig.logs()
    assert result["response"] is None
    assert sim_requests(sim, "google") == 0  # never sent across vector spaces


def test_ollama_api_embed(rig, sim) -> None:  # type: ignore[no-untyped-def]
    from helpers.llm_config import sim_providers

    from simulator.server import API_BASES

    providers = sim_providers(sim.url)
    providers["local"] = {"api_base": sim.url + API_BASES["ollama"], "dialect": "ollama"}
    config = rig.configure(emb_models(local=48), providers=providers)
    rig.start(concurrency=2)
    source = write_jsonl(rig.tmp_path / "in.jsonl", openai_lines("emb-local"))
    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        results = list(client.iter_results(run(rig, client, source)))
    assert results[0]["response"]["embeddings"] == expected("m-local", TEXTS, 48)
    assert results[2]["response"]["embeddings"] == expected("m-local", ["two", "texts"], 48)
    assert "usage_estimated" not in results[0]["response"]  # prompt_eval_count was read
    assert sim_requests(sim, "ollama") == 3
