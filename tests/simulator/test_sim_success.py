"""Successful replies: every endpoint, usage shape, deterministic token counts and text."""

from __future__ import annotations

import hashlib
import json
import math
import random

import httpx
import pytest
from sim_helpers import LENGTH, PROVIDERS, STOP, extract, send

from simulator.server import RunningSimulator
from simulator.textgen import count_prompt_tokens

SYSTEM = "You are terse."  # 14 bytes -> 4 tokens
USER = "Hello, simulator!"  # 17 bytes -> 5 tokens
# 4 + 5 + 3 per message (system counts as one) = 15; completion = 16 + 15 % 17 = 31
EXPECTED_PROMPT = 15
EXPECTED_COMPLETION = 31


def _expected_prefix(model: str, last_user: str) -> str:
    return "sim:" + hashlib.sha256((model + last_user).encode()).hexdigest()[:12]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_endpoint_success_usage_and_text(client: httpx.Client, provider: str) -> None:
    response = send(client, provider, model="model-a", system=SYSTEM)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    text, prompt, completion, finish, model = extract(provider, response.json())
    assert prompt == EXPECTED_PROMPT
    assert completion == EXPECTED_COMPLETION
    assert finish == STOP[provider]
    assert text.startswith(_expected_prefix("model-a", USER))
    assert len(text.split(" ")) == completion
    if provider != "cohere":  # Cohere v2 replies carry no model field
        assert model == "model-a"
    again = send(client, provider, model="model-a", system=SYSTEM)
    assert extract(provider, again.json())[:3] == (text, prompt, completion)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_max_tokens_truncates_with_length_reason(client: httpx.Client, provider: str) -> None:
    response = send(client, provider, system=SYSTEM, max_tokens=7)
    assert response.status_code == 200, response.text
    text, prompt, completion, finish, _ = extract(provider, response.json())
    assert (prompt, completion, finish) == (EXPECTED_PROMPT, 7, LENGTH[provider])
    assert len(text.split(" ")) == 7


@pytest.mark.parametrize("provider", PROVIDERS)
def test_max_tokens_above_natural_length_is_stop(client: httpx.Client, provider: str) -> None:
    response = send(client, provider, system=SYSTEM, max_tokens=500)
    _, _, completion, finish, _ = extract(provider, response.json())
    assert (completion, finish) == (EXPECTED_COMPLETION, STOP[provider])


def test_multi_turn_counts_every_message(client: httpx.Client) -> None:
    turns = [("user", "a" * 9), ("assistant", "é" * 3), ("user", "last one")]
    # ceil(9/4)=3, ceil(6/4)=2, ceil(8/4)=2 -> 7 + 3*3 = 16; completion 16 + 16 = 32
    for provider in PROVIDERS:
        response = send(client, provider, messages=turns)
        assert response.status_code == 200, (provider, response.text)
        text, prompt, completion, _, _ = extract(provider, response.json())
        assert (prompt, completion) == (16, 32), provider
        assert text.startswith(_expected_prefix("test-model", "last one"))


def test_default_completion_cap_is_256() -> None:
    # No max_tokens: min(256, 16 + p % 17) is always the natural length (<= 32).
    assert max(16 + p % 17 for p in range(1000)) == 32


def test_prompt_tokens_upper_bound_invariant() -> None:
    rng = random.Random(7)
    alphabet = "aé漢😀 \n"
    for _ in range(500):
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(40))) for _ in "xyz"]
        n = len(texts)
        tokens = count_prompt_tokens(texts, n)
        assert tokens == sum(math.ceil(len(t.encode()) / 4) for t in texts) + 3 * n
        assert tokens <= sum(len(t.encode()) for t in texts) + 8 * n


def test_openai_max_completion_tokens_and_details(client: httpx.Client) -> None:
    body = {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": [{"type": "text", "text": USER}]}],
        "max_completion_tokens": 3,
    }
    response = client.post(
        "/openai/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"}
    )
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["usage"]["completion_tokens"] == 3
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert response.headers["x-request-id"].startswith("req_")


def test_request_id_headers(client: httpx.Client) -> None:
    assert send(client, "openai").headers["x-request-id"].startswith("req_")
    first = send(client, "anthropic").headers["request-id"]
    assert first.startswith("req_") and first != send(client, "anthropic").headers["request-id"]


def test_google_query_key_and_system_instruction(client: httpx.Client) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": USER}]}],
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
    }
    response = client.post("/google/v1beta/models/gemini-x:generateContent?key=k", json=body)
    assert response.status_code == 200
    assert response.json()["usageMetadata"]["promptTokenCount"] == EXPECTED_PROMPT


def test_google_v1_path_alias(client: httpx.Client) -> None:
    body = {"contents": [{"parts": [{"text": USER}]}]}
    headers = {"x-goog-api-key": "k"}
    response = client.post("/google/v1/models/gemini-x:generateContent", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["usageMetadata"]["promptTokenCount"] == 8


def test_ollama_stream_default_is_ndjson(client: httpx.Client) -> None:
    body = {"model": "llama3", "messages": [{"role": "user", "content": USER}]}
    response = client.post("/ollama/api/chat", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert all(not line["done"] for line in lines[:-1]) and lines[-1]["done"] is True
    text = "".join(line["message"]["content"] for line in lines)
    assert text.startswith(_expected_prefix("llama3", USER))
    assert lines[-1]["eval_count"] == len(text.split(" "))
    assert lines[-1]["prompt_eval_count"] == 8  # ceil(17/4) + 3


def test_ollama_stream_false_is_one_json(client: httpx.Client) -> None:
    body = {"model": "llama3", "messages": [{"role": "user", "content": USER}], "stream": False}
    data = client.post("/ollama/api/chat", json=body).json()
    assert data["done"] is True and data["done_reason"] == "stop"
    assert {"prompt_eval_count", "eval_count", "total_duration", "eval_duration"} <= set(data)


def test_stats_count_served_tokens(sim: RunningSimulator, client: httpx.Client) -> None:
    for _ in range(3):
        send(client, "openai", model="gpt-a", system=SYSTEM)
    send(client, "cohere", model="command-r", system=SYSTEM, max_tokens=5)
    stats = sim.stats()
    assert stats["total_requests"] == 4 and stats["total_served"] == 4
    openai = stats["providers"]["openai"]
    assert openai["requests"] == 3 and openai["by_status"] == {"200": 3}
    assert openai["models"]["gpt-a"] == {
        "requests": 3,
        "served": 3,
        "prompt_tokens": 3 * EXPECTED_PROMPT,
        "completion_tokens": 3 * EXPECTED_COMPLETION,
    }
    cohere = stats["providers"]["cohere"]["models"]["command-r"]
    assert (cohere["prompt_tokens"], cohere["completion_tokens"]) == (EXPECTED_PROMPT, 5)
