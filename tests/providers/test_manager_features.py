"""`call_model` with the request surface of a JSONL line (issue 15), against the simulator over
HTTP: JSON output checked and parsed, tool calls in OpenAI's shape, images, deployments that
cannot honour a feature skipped for a fallback that can, invalid JSON retried elsewhere and
then raised as `invalid_output`, refusals reported as such."""

from __future__ import annotations

import json
import pickle
from typing import Any

import jsonschema
import pytest

from core.errors import BadRequest, InvalidOutput
from schemas import LLMConfig, LLMModelConfig
from schemas.job import ChatMessage, ErrorKind
from schemas.request import JsonSchemaFormat, NamedToolChoice, ResponseFormat, ToolSpec
from workers.providers import LLMProviderManager

from .test_manager import KEY, RecordingSleep, documented_config

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["bug", "feature"]}, "score": {"type": "integer"}},
    "required": ["label", "score"],
    "additionalProperties": False,
}  # fmt: skip
AS_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "triage", "schema": SCHEMA, "strict": True},
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture()
def manager(sim):
    m = LLMProviderManager(config=documented_config(sim), env={}, sleep=RecordingSleep())
    yield m
    m.close()


def two_tier(sim: Any, first: dict[str, Any], second: dict[str, Any], **extra: Any) -> LLMConfig:
    """One model, two deployments on the simulator, tried in this order (priority strategy)."""
    providers = {
        p: {"api_base": sim.api_base(p), "api_key": KEY} for p in {first["provider"], second["provider"]}
    }  # fmt: skip
    models = [
        LLMModelConfig(name="m", priority=0, max_tokens=256, **first),
        LLMModelConfig(name="m", priority=1, max_tokens=256, **second),
    ]
    routing = {"strategy": "priority", "backoff_base_s": 0.01, "backoff_max_s": 0.02}
    return LLMConfig(providers=providers, models=models, routing=routing, **extra)


@pytest.mark.parametrize(
    "name", ["gpt-4", "claude-2", "llama-2-7b", "gemini-2.5-flash", "command-r", "local-llama"]
)
def test_json_schema_reply_is_parsed_and_valid_on_every_provider(manager, sim, name):
    result = manager.call_model(
        model_name=name, prompt="Triage: crash on start", response_format=AS_SCHEMA
    )
    jsonschema.validate(result["parsed"], SCHEMA)
    assert json.loads(result["response"]) == result["parsed"]
    assert result["tool_calls"] == [] and result["refusal"] is None
    body = sim.requests(limit=1)[-1]["request"]["body"]
    assert '"enum": ["bug", "feature"]' in json.dumps(body)  # the schema reached the provider


def test_json_object_and_pydantic_models_are_accepted(manager):
    fmt = ResponseFormat(
        type="json_schema", json_schema=JsonSchemaFormat(name="triage", json_schema=SCHEMA)
    )
    assert set(manager.call_model(prompt="x", response_format=fmt)["parsed"]) == {"label", "score"}
    result = manager.call_model(prompt="Answer in JSON", response_format={"type": "json_object"})
    assert isinstance(result["parsed"], dict)
    assert manager.call_model(prompt="x")["parsed"] is None  # no JSON asked: nothing parsed


@pytest.mark.parametrize("name", ["gpt-4", "claude-2", "gemini-2.5-flash", "command-r"])
def test_forced_tool_call_comes_back_in_openai_shape(manager, name):
    result = manager.call_model(
        model_name=name,
        prompt="Weather in Paris?",
        tools=[WEATHER],
        tool_choice=(  # the pydantic form is accepted too
            NamedToolChoice(name="get_weather")
            if name == "claude-2"
            else {"type": "function", "function": {"name": "get_weather"}}
        ),
    )
    assert result["finish_reason"] == "tool_calls"
    [call] = result["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert isinstance(call["id"], str) and call["id"]
    jsonschema.validate(
        json.loads(call["function"]["arguments"]), WEATHER["function"]["parameters"]
    )


def test_tool_result_history_and_image_reach_the_provider(manager, sim):
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    result = manager.call_model(
        model_name="claude-2",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG}}]},
            ChatMessage(role="assistant", content=None, tool_calls=({"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},)),
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        ],
        tools=[ToolSpec.model_validate(WEATHER)],
        stop=["END"],
    )  # fmt: skip
    assert result["provider"] == "anthropic" and call["id"] == "call_1"
    body = sim.requests(provider="anthropic", limit=1)[-1]["request"]["body"]
    blocks = [
        b["type"]
        for m in body["messages"]
        for b in (m["content"] if isinstance(m["content"], list) else [])
    ]
    assert {"image", "tool_use", "tool_result"} <= set(blocks)
    assert body["stop_sequences"] == ["END"] and body["tools"][0]["name"] == "get_weather"


def test_deployment_lacking_a_feature_is_skipped_for_a_fallback_that_has_it(sim, client):
    config = two_tier(
        sim,
        {"provider": "cohere", "model_id": "command-r-08-2024"},  # no vision, no JSON + tools
        {"provider": "openai", "model_id": "gpt-4o-mini"},
    )
    with LLMProviderManager(config=config, client=client, env={}) as manager:
        assert manager.call_model(prompt="plain")["provider"] == "cohere"  # first when it can
        image = [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": PNG}}]}]  # fmt: skip
        result = manager.call_model(messages=image)
        assert (result["provider"], result["attempts"]) == ("openai", 1)
        both = manager.call_model(
            prompt="Answer in JSON", response_format={"type": "json_object"}, tools=[WEATHER]
        )
        assert both["provider"] == "openai"
    assert [e["provider"] for e in sim.log()] == ["cohere", "openai", "openai"]


def test_a_feature_no_deployment_honours_is_rejected_before_any_call(sim, client):
    config = two_tier(
        sim,
        {"provider": "cohere", "model_id": "command-r-08-2024"},
        {"provider": "openai", "model_id": "gpt-4o-mini", "capabilities": {"vision": False}},
    )
    with LLMProviderManager(config=config, client=client, env={}) as manager:
        with pytest.raises(BadRequest, match="^call_model: no deployment of m supports vision$"):
            manager.call_model(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}])  # fmt: skip
    assert sim.log() == []


def test_invalid_json_moves_to_the_next_deployment(sim, client):
    config = two_tier(sim, {"provider": "openai", "model_id": "gpt-4o-mini"}, {"provider": "anthropic", "model_id": "claude-haiku-4-5"})  # fmt: skip
    sim.configure("openai", rate_invalid_json=1.0)
    with LLMProviderManager(config=config, client=client, env={}) as manager:
        result = manager.call_model(prompt="Triage", response_format=AS_SCHEMA)
    assert (result["provider"], result["attempts"], result["fallback"]) == ("anthropic", 2, False)
    jsonschema.validate(result["parsed"], SCHEMA)
    assert [e["kind"] for e in sim.log()] == ["invalid_json", "ok"]


def test_invalid_json_everywhere_raises_invalid_output_with_the_raw_reply(sim, client):
    config = two_tier(sim, {"provider": "openai", "model_id": "gpt-4o-mini"}, {"provider": "anthropic", "model_id": "claude-haiku-4-5"})  # fmt: skip
    sim.configure("openai", rate_invalid_json=1.0)
    sim.configure("anthropic", rate_invalid_json=1.0)
    sleeps = RecordingSleep()
    with LLMProviderManager(
        config=config, client=client, env={}, sleep=sleeps, max_retries=1
    ) as manager:
        with pytest.raises(InvalidOutput) as caught:
            manager.call_model(prompt="Triage", response_format=AS_SCHEMA)
    err = caught.value
    assert err.kind == ErrorKind.INVALID_OUTPUT == "invalid_output"
    assert (
        "all candidates failed" in str(err)
        and "gpt-4o-mini" in str(err)
        and "claude-haiku-4-5" in str(err)
    )
    assert err.provider == "anthropic" and isinstance(err.raw, str)
    assert pickle.loads(pickle.dumps(err)).raw == err.raw
    # openai once (then excluded), anthropic, one backoff, anthropic again; every one billed
    assert [e["provider"] for e in sim.log()] == ["openai", "anthropic", "anthropic"]
    assert len(sleeps.calls) == 1


def test_invalid_tool_call_arguments_are_invalid_output(sim, client):
    config = two_tier(sim, {"provider": "openai", "model_id": "gpt-4o-mini"}, {"provider": "google", "model_id": "gemini-2.5-flash"})  # fmt: skip
    sim.configure("openai", rate_invalid_json=1.0)
    with LLMProviderManager(config=config, client=client, env={}) as manager:
        result = manager.call_model(prompt="Weather?", tools=[WEATHER], tool_choice="required")
    assert result["provider"] == "google" and result["attempts"] == 2
    assert json.loads(result["tool_calls"][0]["function"]["arguments"])["city"]


def test_refusal_is_reported_not_retried_as_invalid_json(sim, client):
    config = two_tier(sim, {"provider": "openai", "model_id": "gpt-4o-mini"}, {"provider": "anthropic", "model_id": "claude-haiku-4-5"})  # fmt: skip
    sim.configure("openai", rate_refusal=1.0)
    with LLMProviderManager(config=config, client=client, env={}) as manager:
        result = manager.call_model(prompt="Triage", response_format=AS_SCHEMA)
    assert result["provider"] == "openai" and result["attempts"] == 1
    assert result["refusal"] and result["parsed"] is None
    assert [e["kind"] for e in sim.log()] == ["refusal"]


def test_sampling_parameters_reach_the_provider(manager, sim):
    manager.call_model(
        prompt="x", stop="END", top_p=0.5, seed=7, presence_penalty=0.1, frequency_penalty=0.2, user="u1"
    )  # fmt: skip
    body = sim.requests(provider="openai", limit=1)[-1]["request"]["body"]
    assert {k: body[k] for k in ("stop", "top_p", "seed", "presence_penalty", "frequency_penalty", "user")} == {
        "stop": ["END"], "top_p": 0.5, "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.2, "user": "u1",
    }  # fmt: skip
