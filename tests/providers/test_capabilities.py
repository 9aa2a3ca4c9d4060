"""Capabilities: each adapter's built-in table (by model where models differ), per-deployment
overrides from llm_config.yaml, the `capabilities_of` resolver, and the promise behind them:
a deployment builds every request whose features it claims, and refuses (BadRequest) the
rest instead of dropping anything."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.errors import BadRequest
from schemas.config import LLMConfig, LLMModelConfig, LLMProvider
from schemas.request import Feature, Features, NamedToolChoice, required_features
from workers.providers import capabilities_of

from .feature_cases import AS_OBJECT, AS_SCHEMA, HTTPS_IMAGE, PNG, WEATHER, adapter, req, user

F = Feature
ALL = frozenset(Feature)
TOOL_CHOICES = {F.TOOL_CHOICE_REQUIRED, F.TOOL_CHOICE_NAMED, F.TOOL_CHOICE_NONE}

# (provider, model id, dialect, what it cannot honour)
TABLE = [
    (LLMProvider.OPENAI, "gpt-4o", None, set()),
    (LLMProvider.HUGGINGFACE, "meta-llama/Llama-3.3-70B-Instruct", None, set()),
    (LLMProvider.LOCAL, "llama3.1", "openai", set()),
    (LLMProvider.LOCAL, "llama3.1", "ollama", TOOL_CHOICES | {F.SERIAL_TOOL_CALLS, F.IMAGE_URL}),
    (LLMProvider.ANTHROPIC, "claude-3-5-haiku-20241022", None, {F.SEED, F.PENALTIES, F.BLANK_STOP}),
    (LLMProvider.ANTHROPIC, "claude-opus-4-1-20250805", None,
     {F.SEED, F.PENALTIES, F.TOP_P, F.BLANK_STOP}),
    (LLMProvider.ANTHROPIC, "claude-sonnet-4-5-20250929", None,
     {F.SEED, F.PENALTIES, F.TOP_P, F.BLANK_STOP}),
    (LLMProvider.GOOGLE, "gemini-2.5-flash", None,
     {F.IMAGE_URL, F.SERIAL_TOOL_CALLS, F.JSON_WITH_TOOLS}),
    (LLMProvider.GOOGLE, "gemini-3-pro-preview", None,
     {F.IMAGE_URL, F.SERIAL_TOOL_CALLS, F.PENALTIES}),
    (LLMProvider.COHERE, "command-a-03-2025", None,
     {F.JSON_WITH_TOOLS, F.SERIAL_TOOL_CALLS, F.VISION, F.IMAGE_URL}),
    (LLMProvider.COHERE, "command-a-vision-07-2025", None, {F.JSON_WITH_TOOLS, F.SERIAL_TOOL_CALLS}),
]  # fmt: skip


def config_for(provider, model, dialect=None, capabilities=None) -> LLMConfig:
    settings = {"dialect": dialect} if dialect and dialect != "openai" else {}
    return LLMConfig(
        providers={provider: settings},
        models=[
            LLMModelConfig(name="m", provider=provider, model_id=model, capabilities=capabilities)
        ],
    )


@pytest.mark.parametrize(("provider", "model", "dialect", "missing"), TABLE)
def test_built_in_table(provider, model, dialect, missing):
    config = config_for(provider, model, dialect)
    assert capabilities_of(config.models[0], config) == ALL - missing
    honours = adapter(provider, model, **({"dialect": dialect} if dialect else {})).honours
    assert honours == ALL - missing  # the adapter enforces what the resolver tells routing


def test_without_the_config_a_multi_dialect_provider_promises_only_what_all_dialects_can():
    config = config_for(LLMProvider.LOCAL, "llama3.1")
    assert capabilities_of(config.models[0]) == ALL - TOOL_CHOICES - {
        F.SERIAL_TOOL_CALLS,
        F.IMAGE_URL,
    }
    assert capabilities_of(config.models[0], config) == ALL


def test_overrides_add_and_remove():
    config = config_for(
        LLMProvider.COHERE, "command-r", capabilities={"vision": True, "seed": False}
    )
    caps = capabilities_of(config.models[0], config)
    assert F.VISION in caps and F.SEED not in caps


def test_overrides_from_yaml_shaped_data_and_unknown_names_rejected():
    raw = {"models": [{"name": "m", "provider": "openai", "capabilities": {"tools": False}}]}
    assert LLMConfig.model_validate(raw).models[0].capabilities == {F.TOOLS: False}
    raw["models"][0]["capabilities"] = {"telepathy": True}
    with pytest.raises(ValidationError, match="telepathy"):
        LLMConfig.model_validate(raw)


def test_an_override_removing_a_feature_makes_the_adapter_refuse_it():
    a = adapter(LLMProvider.OPENAI, capabilities={"tools": False})
    with pytest.raises(BadRequest, match="cannot honour tools"):
        a.build_request(req(tools=(WEATHER,)))


# One request per feature (with what that feature presupposes).
PROBES: dict[Feature, dict] = {
    F.JSON_OBJECT: {"response_format": AS_OBJECT},
    F.JSON_SCHEMA: {"response_format": AS_SCHEMA},
    F.TOOLS: {"tools": (WEATHER,)},
    F.TOOL_CHOICE_REQUIRED: {"tools": (WEATHER,), "tool_choice": "required"},
    F.TOOL_CHOICE_NAMED: {"tools": (WEATHER,), "tool_choice": NamedToolChoice(name="get_weather")},
    F.TOOL_CHOICE_NONE: {"tools": (WEATHER,), "tool_choice": "none"},
    F.JSON_WITH_TOOLS: {"tools": (WEATHER,), "response_format": AS_SCHEMA},
    F.VISION: {"messages": (user("what is this?", PNG),)},
    F.IMAGE_URL: {"messages": (user("what is this?", HTTPS_IMAGE),)},
    F.STOP: {"stop": ("END",)},
    F.TOP_P: {"top_p": 0.5},
    F.SEED: {"seed": 1},
    F.PENALTIES: {"presence_penalty": 0.5},
    F.SERIAL_TOOL_CALLS: {"tools": (WEATHER,), "parallel_tool_calls": False},
    F.BLANK_STOP: {"stop": ("END", "\n\n")},
}


def test_every_feature_has_a_probe_that_needs_it():
    for feature in Feature:
        r = req(**PROBES[feature])
        assert feature in required_features(r.features, r.messages)


@pytest.mark.parametrize(("provider", "model", "dialect", "missing"), TABLE)
@pytest.mark.parametrize("feature", list(Feature))
def test_claims_are_honoured_and_the_rest_refused(provider, model, dialect, missing, feature):
    a = adapter(provider, model, **({"dialect": dialect} if dialect else {}))
    r = req(model_id=model, temperature=0.5, **PROBES[feature])
    need = required_features(r.features, r.messages)
    if need <= a.honours:
        assert a.build_request(r).content  # built, nothing refused
    else:
        with pytest.raises(BadRequest, match="cannot honour"):
            a.build_request(r)


def test_plain_requests_need_nothing():
    assert required_features(Features(), req().messages) == frozenset()
