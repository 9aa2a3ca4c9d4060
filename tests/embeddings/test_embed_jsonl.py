"""Embedding lines at submit (issue 17): both shapes, mixed with chat lines, and every bad line
named `line N: reason` with nothing submitted: a chat line for an embedding model and the
reverse, per-line limits (inputs, input size), dimensions against the model's, bad fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core import cache_key, jsonl
from core.jsonl_embed import MAX_INPUT_BYTES, MAX_INPUTS
from schemas.config import LLMConfig
from schemas.embedding import EmbeddingRequest
from schemas.job import JobSpec

CONFIG = LLMConfig(
    models=[
        {"name": "chat", "provider": "openai", "is_default": True},
        {"name": "emb", "provider": "openai", "mode": "embedding", "dimensions": 256},
        {"name": "co", "provider": "cohere", "mode": "embedding", "input_type": "clustering"},
    ]
)


def parse(*lines: dict[str, Any]) -> list[JobSpec]:
    return jsonl.parse_lines(((i, json.dumps(x)) for i, x in enumerate(lines, 1)), CONFIG)


def errors(*lines: dict[str, Any]) -> list[str]:
    with pytest.raises(jsonl.InputError) as info:
        parse(*lines)
    return info.value.errors


def batch(body: dict[str, Any], cid: str = "b") -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": "/v1/embeddings", "body": body}


def test_a_file_mixes_chat_and_both_embedding_shapes() -> None:
    specs = parse(
        {"custom_id": "c", "prompt": "hi"},
        {"custom_id": "n", "model": "emb", "input": ["a", "b"], "dimensions": 256},
        batch({"model": "emb", "input": "one", "encoding_format": "base64"}),
        {"custom_id": "d", "model": "co", "input": "x", "input_type": "search_query"},
    )
    assert [s.is_embedding for s in specs] == [False, True, True, True]
    assert specs[1].embedding == EmbeddingRequest(inputs=("a", "b"), dimensions=256)
    assert specs[2].embedding == EmbeddingRequest(inputs=("one",), encoding_format="base64")
    assert specs[3].embedding is not None and specs[3].embedding.input_type == "search_query"
    assert specs[1].messages == [] and specs[1].model == "emb"


def test_python_built_specs_round_trip_through_the_file_rules() -> None:
    spec = JobSpec(custom_id="p", model="emb", embedding=EmbeddingRequest(inputs=("a",)))
    (checked,) = jsonl.check_specs([spec], CONFIG)
    assert checked.embedding == spec.embedding


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ({"custom_id": "x", "model": "chat", "input": "a"}, "model 'chat' is a chat model"),
        (batch({"input": "a"}), "model 'chat' is a chat model"),  # the default model is chat
        ({"custom_id": "x", "model": "emb", "prompt": "a"}, "model 'emb' is an embedding model"),
        (
            {"custom_id": "x", "model": "emb", "input": "a", "dimensions": 512},
            "dimensions 512 differs from model 'emb''s configured dimensions 256",
        ),
        ({"custom_id": "x", "model": "emb", "input": []}, "input is an empty list"),
        ({"custom_id": "x", "model": "emb", "input": [" "]}, "missing text: input[0] is empty"),
        ({"custom_id": "x", "model": "emb", "input": [[1, 2]]}, "token arrays are refused"),
        ({"custom_id": "x", "model": "emb", "input": 3}, "input must be a string or a list"),
        (
            {"custom_id": "x", "model": "emb", "input": ["a"] * (MAX_INPUTS + 1)},
            f"input has {MAX_INPUTS + 1} inputs; at most {MAX_INPUTS} per line",
        ),
        (
            {"custom_id": "x", "model": "emb", "input": ["a", "é" * MAX_INPUT_BYTES]},
            f"input[1] is {2 * MAX_INPUT_BYTES} bytes; at most {MAX_INPUT_BYTES} per input",
        ),
        (batch({"model": "emb", "input": "a", "user": "u"}), "unsupported field(s): body.user"),
        (batch({"model": "emb"}), "missing text: body.input is required"),
        (
            batch({"model": "emb", "input": "a", "encoding_format": "int8"}),
            'body.encoding_format must be "float" or "base64"',
        ),
        (batch({"model": "emb", "input": "a", "dimensions": 0}), "body.dimensions must be"),
        ({"custom_id": "x", "model": "emb", "input": "a", "temperature": 0}, "unsupported"),
        (
            {"custom_id": "x", "method": "POST", "url": "/v1/completions", "body": {}},
            'url must be "/v1/chat/completions" or "/v1/embeddings"',
        ),
    ],
)
def test_bad_embedding_lines_name_line_and_reason(line: dict[str, Any], reason: str) -> None:
    found = errors({"custom_id": "ok", "prompt": "fine"}, line)
    assert len(found) == 1 and found[0].startswith("line 2: "), found
    assert reason in found[0], found


def test_cache_key_ignores_temperature_and_keeps_what_changes_the_vectors() -> None:
    def key(line: dict[str, Any]) -> str | None:
        (spec,) = parse({"custom_id": "k", "model": "co", **line})
        return cache_key.key_for(spec, CONFIG)

    base = key({"input": ["a", "b"]})
    assert base is not None  # deployments at temperature 0.7: embeddings are cached anyway
    assert key({"input": ["a", "b"], "input_type": "clustering"}) == base  # the configured one
    assert key({"input": ["a", "b"], "encoding_format": "base64"}) == base  # output form only
    assert key({"input": ["b", "a"]}) != base
    assert key({"input": ["a", "b"], "input_type": "search_query"}) != base
    assert key({"input": ["a", "b"], "cache": False}) is None
    (chat,) = parse({"custom_id": "c", "prompt": "a", "temperature": 0})
    assert cache_key.key_for(chat, CONFIG) != base
