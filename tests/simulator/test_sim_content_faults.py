"""The invalid-JSON and refusal knobs: shares, determinism, reply shapes, log kinds."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from feature_helpers import ALL, PERSON, WEATHER_PARAMS, build, calls, finish, text
from jsonschema import Draft202012Validator

from simulator.server import RunningSimulator

N = 120


def _valid(provider: str, data: dict[str, Any]) -> bool:
    try:
        return Draft202012Validator(PERSON).is_valid(json.loads(text(provider, data)))
    except ValueError:
        return False


def _run(client: httpx.Client, provider: str, n: int = N) -> list[bool]:
    out = []
    for i in range(n):
        path, headers, body = build(provider, "m", f"Person {i} as JSON", schema=PERSON)
        response = client.post(path, headers=headers, json=body)
        assert response.status_code == 200, response.text
        out.append(_valid(provider, response.json()))
    return out


@pytest.mark.parametrize("provider", ["openai", "google"])
def test_invalid_json_share_is_counted_and_reproducible(
    sim: RunningSimulator, client: httpx.Client, provider: str
) -> None:
    sim.configure(provider, rate_invalid_json=0.2)
    first = _run(client, provider)
    bad = first.count(False)
    assert 0.1 * N <= bad <= 0.3 * N
    kinds = sim.stats()["providers"][provider]["by_kind"]
    assert kinds == {"ok": N - bad, "invalid_json": bad}
    assert len(sim.requests(kind="invalid_json")) == bad
    sim.reset()  # same seed, same bodies, same order: the same replies
    assert _run(client, provider) == first


def test_invalid_json_takes_both_forms(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("openai", rate_invalid_json=1.0)
    forms = set()
    for i in range(30):
        path, headers, body = build("openai", "m", f"json {i}", schema=PERSON)
        reply = text("openai", client.post(path, headers=headers, json=body).json())
        try:
            value = json.loads(reply)
        except ValueError:
            forms.add("not json")
        else:
            assert not Draft202012Validator(PERSON).is_valid(value)
            forms.add("schema violation")
    assert forms == {"not json", "schema violation"}


def test_a_retry_draws_afresh(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("openai", rate_invalid_json=0.5)
    path, headers, body = build("openai", "m", "same json body", schema=PERSON)
    results = [
        _valid("openai", client.post(path, headers=headers, json=body).json()) for _ in range(40)
    ]
    assert True in results and False in results
    valid = [
        text("openai", r)
        for r in (client.post(path, headers=headers, json=body).json() for _ in range(10))
        if _valid("openai", r)
    ]
    assert len(set(valid)) <= 1  # every valid answer is the same answer


def test_plain_text_is_untouched_by_invalid_json(
    sim: RunningSimulator, client: httpx.Client
) -> None:
    sim.configure("openai", rate_invalid_json=1.0)
    path, headers, body = build("openai", "m", "hello")
    assert text("openai", client.post(path, headers=headers, json=body).json()).startswith("sim:")
    assert sim.stats()["providers"]["openai"]["by_kind"] == {"ok": 1}


@pytest.mark.parametrize("provider", ["anthropic", "ollama", "openai"])
def test_invalid_json_breaks_tool_arguments(
    sim: RunningSimulator, client: httpx.Client, provider: str
) -> None:
    sim.configure(provider, rate_invalid_json=1.0)
    path, headers, body = build(provider, "m", "use get_weather", tools="required")
    data = client.post(path, headers=headers, json=body).json()
    ((name, args),) = calls(provider, data)
    assert name == "get_weather" and not Draft202012Validator(WEATHER_PARAMS).is_valid(args)


@pytest.mark.parametrize("provider", ALL)
def test_refusal_shapes(sim: RunningSimulator, client: httpx.Client, provider: str) -> None:
    sim.configure(provider, rate_refusal=1.0)
    path, headers, body = build(provider, "m", "json please", schema=PERSON)
    response = client.post(path, headers=headers, json=body)
    assert response.status_code == 200
    data = response.json()
    if provider in ("openai", "huggingface", "local"):
        message = data["choices"][0]["message"]
        assert message["content"] is None and message["refusal"]
        assert data["choices"][0]["finish_reason"] == "stop"
    elif provider == "anthropic":
        assert data["stop_reason"] == "refusal"
    elif provider == "google":
        assert data["candidates"][0]["finishReason"] == "SAFETY"
        assert "content" not in data["candidates"][0]
    else:
        assert "can't help" in text(provider, data)
        assert finish(provider, data) in ("COMPLETE", "stop")
    assert sim.stats()["providers"][provider]["by_kind"] == {"refusal": 1}


def test_knobs_per_model(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.configure("openai", models={"bad-*": {"rate_invalid_json": 1.0}})
    for model, expected in (("bad-one", False), ("good-one", True)):
        path, headers, body = build("openai", model, "as json", schema=PERSON)
        assert _valid("openai", client.post(path, headers=headers, json=body).json()) is expected
