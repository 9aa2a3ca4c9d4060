"""Keys never leak: not through the config's repr/str/dump/JSON, not through exceptions (even
when the provider echoes the key back), not through status or logs. Exceptions pickle."""

from __future__ import annotations

import json
import logging
import pickle

import pytest

from core import errors
from schemas import LLMConfig, LLMModelConfig
from workers.providers import LLMProviderManager
from workers.providers.config import load_config

PROVIDER_KEY = "sk-provider-SECRET-0001"
MODEL_KEY = "sk-model-SECRET-0002"
ENV_KEY = "sk-env-SECRET-0003"
BAD_KEY = "bad-SECRET-echoed-0004"
ALL_KEYS = (PROVIDER_KEY, MODEL_KEY, ENV_KEY, BAD_KEY)


def assert_clean(text: str) -> None:
    for key in ALL_KEYS:
        assert key not in text


def config() -> LLMConfig:
    return LLMConfig(
        providers={"openai": {"api_key": PROVIDER_KEY}},
        models=[
            LLMModelConfig(name="a", provider="openai"),
            LLMModelConfig(name="b", provider="anthropic", api_key=MODEL_KEY),
        ],
    )


def test_config_never_shows_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        f"providers:\n  openai:\n    api_key: {PROVIDER_KEY}\n"
        f"models:\n  - {{name: b, provider: anthropic, api_key: {MODEL_KEY}}}\n",
        encoding="utf-8",
    )
    for cfg in (config(), load_config(str(path), env={"COHERE_API_KEY": ENV_KEY})):
        for text in (
            repr(cfg),
            str(cfg),
            repr(cfg.model_dump()),
            cfg.model_dump_json(),
            json.dumps(cfg.model_dump(mode="json")),
            repr(cfg.providers),
            repr(cfg.models),
        ):
            assert_clean(text)


def test_keys_are_still_usable():
    cfg = config()
    assert cfg.providers["openai"].api_key.get_secret_value() == PROVIDER_KEY
    assert cfg.models[1].api_key.get_secret_value() == MODEL_KEY


def test_echoed_key_never_reaches_exception_status_or_logs(sim, caplog):
    caplog.set_level(logging.DEBUG)
    cfg = LLMConfig(
        providers={"openai": {"api_base": sim.api_base("openai"), "api_key": BAD_KEY}},
        models=[LLMModelConfig(name="a", provider="openai")],
    )
    manager = LLMProviderManager(config=cfg, env={})
    with pytest.raises(errors.AuthFailed) as info:
        manager.call_model(prompt="hi")
    err = info.value
    for text in (str(err), repr(err), repr(err.fields), repr(err.__dict__)):
        assert_clean(text)
    restored = pickle.loads(pickle.dumps(err))
    assert_clean(repr(restored.__dict__))
    assert_clean(json.dumps(manager.get_provider_status("openai"), default=str))
    assert_clean(caplog.text)
    manager.close()


ALL_ERRORS = [
    cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.LLMQError)
]


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_fields(cls):
    err = cls(
        "message",
        provider="openai",
        model="gpt-4",
        status=429,
        retry_after=1.5,
        request_id="req_1",
        deployment="openai/gpt-4",
    )
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == "message"
    assert (back.provider, back.model, back.status, back.retry_after, back.request_id) == (
        "openai",
        "gpt-4",
        429,
        1.5,
        "req_1",
    )
    assert back.kind == err.kind


def test_adapter_error_from_the_wire_pickles(sim, client):
    from .simhelp import adapter_for, request

    sim.configure("google", rate_429=1.0, retry_after_s=3)
    with pytest.raises(errors.RateLimited) as info:
        adapter_for(sim, "google", client).complete(request())
    back = pickle.loads(pickle.dumps(info.value))
    assert (type(back), back.retry_after, back.status) == (errors.RateLimited, 3.0, 429)
