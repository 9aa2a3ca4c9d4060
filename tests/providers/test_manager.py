"""The documented LLMProviderManager API end to end, against the simulator over HTTP."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from core.errors import AuthFailed, BadRequest, ConfigError, RateLimited
from schemas import LLMConfig, LLMModelConfig, LLMProvider
from workers.providers import LLMProviderError, LLMProviderManager

KEY = "sk-manager-test-42"


class RecordingSleep:
    """Really sleeps, and remembers how long it was asked to."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        time.sleep(seconds)


def documented_config(sim: Any, **extra: Any) -> LLMConfig:
    """The document's three models, plus one per remaining provider, all on the simulator."""
    providers = {
        p: {"api_base": sim.api_base(p), "api_key": KEY}
        for p in ("openai", "anthropic", "huggingface", "google", "cohere", "local")
    }
    providers["openai"]["organization"] = "your-org-id"
    models = [
        LLMModelConfig(name="gpt-4", provider="openai", max_tokens=8192, temperature=0.7, is_default=True),
        LLMModelConfig(name="claude-2", provider="anthropic", max_tokens=100000, temperature=0.7),
        LLMModelConfig(name="llama-2-7b", provider="huggingface", max_tokens=4096, temperature=0.7),
        LLMModelConfig(name="gemini-2.5-flash", provider="google", max_tokens=256),
        LLMModelConfig(name="command-r", provider="cohere", model_id="command-r-08-2024", max_tokens=256),
        LLMModelConfig(name="local-llama", provider="local", max_tokens=256, input_cost_per_mtok=0, output_cost_per_mtok=0),
    ]  # fmt: skip
    extra.setdefault("routing", {"backoff_base_s": 0.01, "backoff_max_s": 0.05})
    return LLMConfig(default_provider="openai", providers=providers, models=models, **extra)


@pytest.fixture()
def manager(sim):
    # gpt-4 falls back to claude-2 only because the config says so (issue 14: the direct call
    # no longer falls back to every other model when `fallbacks` is empty; the queue never did)
    config = documented_config(sim, fallbacks={"gpt-4": ["claude-2"]})
    m = LLMProviderManager(config=config, env={}, sleep=RecordingSleep())
    yield m
    m.close()


def test_basic_usage(manager):
    result = manager.call_model(prompt="Hello, how are you?")
    assert result["response"].startswith("sim:")
    assert (result["model"], result["provider"]) == ("gpt-4", "openai")
    assert result["finish_reason"] == "stop"
    usage = result["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    # genai-prices: gpt-4 is $30 / $60 per million tokens
    expected = (usage["prompt_tokens"] * 30 + usage["completion_tokens"] * 60) / Decimal(10**6)
    assert isinstance(result["cost_usd"], Decimal) and result["cost_usd"] == expected
    assert result["latency_ms"] >= 0
    assert result["fallback"] is False and result["attempts"] == 1


def test_specific_model_with_parameters(manager, sim):
    result = manager.call_model(
        model_name="gpt-4", prompt="Hello, how are you?", max_tokens=50, temperature=0.7
    )
    assert result["model"] == "gpt-4"
    assert result["usage"]["completion_tokens"] <= 50


@pytest.mark.parametrize(
    "name", ["gpt-4", "claude-2", "llama-2-7b", "gemini-2.5-flash", "command-r", "local-llama"]
)
def test_every_provider_answers(manager, name):
    result = manager.call_model(model_name=name, prompt="Translate to French: Hello world")
    assert result["model"] == name and result["response"].startswith("sim:")
    assert set(result) >= {
        "response", "model", "provider", "finish_reason", "usage", "cost_usd", "latency_ms"
    }  # fmt: skip


def test_unknown_price_is_none_not_a_crash(manager):
    assert manager.call_model(model_name="llama-2-7b", prompt="hi")["cost_usd"] is None


def test_messages_and_system(manager):
    result = manager.call_model(
        model_name="claude-2",
        system="Be brief.",
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        prompt="How are you?",
    )
    assert result["provider"] == "anthropic"


def test_get_available_models_and_set_default(manager):
    assert manager.get_available_models() == [
        "gpt-4", "claude-2", "llama-2-7b", "gemini-2.5-flash", "command-r", "local-llama"
    ]  # fmt: skip
    manager.set_default_model("claude-2")
    result = manager.call_model(prompt="Hello, how are you?")
    assert (result["model"], result["provider"]) == ("claude-2", "anthropic")


def test_add_model_documented_and_callable(manager, sim):
    manager.add_model(
        LLMModelConfig(
            name="custom-model",
            provider=LLMProvider.LOCAL,
            api_url="http://localhost:5000/v1/models/custom",
            max_tokens=2048,
            temperature=0.5,
        )
    )
    assert "custom-model" in manager.get_available_models()
    manager.add_model(
        LLMModelConfig(name="sim-custom", provider=LLMProvider.LOCAL, api_url=sim.api_base("local"))
    )
    assert manager.call_model(model_name="sim-custom", prompt="hi")["model"] == "sim-custom"


def test_update_provider_config_keeps_key_and_rebuilds(manager, sim):
    manager.update_provider_config(
        LLMProvider.OPENAI,
        {"api_base": "https://custom-api.openai.com", "organization": "new-org-id"},
    )
    settings = manager.config.providers[LLMProvider.OPENAI]
    assert settings.api_base == "https://custom-api.openai.com"
    assert settings.organization == "new-org-id"
    assert settings.api_key.get_secret_value() == KEY
    manager.update_provider_config(LLMProvider.OPENAI, {"api_base": sim.api_base("openai")})
    assert manager.call_model(model_name="gpt-4", prompt="hi")["provider"] == "openai"
    with pytest.raises(ConfigError, match="plain HTTP"):
        manager.update_provider_config(LLMProvider.OPENAI, {"api_base": "http://api.example.com"})


def test_provider_status(manager, sim):
    status = manager.get_provider_status(LLMProvider.OPENAI)
    assert status["configured"] and status["key_present"]
    assert status["success_rate"] is None and status["last_error"] is None
    manager.call_model(model_name="gpt-4", prompt="hi")
    status = manager.get_provider_status(LLMProvider.OPENAI)
    assert status["status"] == "ok" and status["success_rate"] == 1.0
    assert status["latency_ms"] is not None
    sim.configure("openai", rate_500=1.0)
    assert manager.call_model(model_name="gpt-4", prompt="hi")["model"] == "claude-2"
    status = manager.get_provider_status(LLMProvider.OPENAI)
    assert status["status"] == "error" and "ProviderUnavailable" in status["last_error"]
    assert 0 < status["success_rate"] < 1


def test_unknown_model_lists_known_names(manager):
    with pytest.raises(LLMProviderError, match="gpt-4.*claude-2.*llama-2-7b"):
        manager.call_model(model_name="gpt-5", prompt="hi")


def test_no_prompt_is_bad_request(manager):
    with pytest.raises(BadRequest):
        manager.call_model(model_name="gpt-4")


def test_rate_limited_falls_back_at_once_like_a_queued_job(sim):
    # Issue 14: the queue's policy (retry.decide): a 429 with a fallback left moves on at
    # once and the deployment cools down; it used to be retried here max_retries times first.
    config = documented_config(sim, fallbacks={"gpt-4": ["claude-2"]})
    sleep = RecordingSleep()
    manager = LLMProviderManager(config=config, env={}, sleep=sleep, max_retries=2)
    sim.configure("openai", rate_429=1.0, retry_after_s=0.05)
    result = manager.call_model(model_name="gpt-4", prompt="hi")
    assert (result["model"], result["fallback"], result["attempts"]) == ("claude-2", True, 2)
    assert sim.stats()["providers"]["openai"]["requests"] == 1
    assert sleep.calls == []


def test_retries_honour_retry_after_with_no_fallback_left(sim):
    sleep = RecordingSleep()
    manager = LLMProviderManager(config=documented_config(sim), env={}, sleep=sleep, max_retries=2)
    sim.configure("openai", rate_429=1.0, retry_after_s=0.05)
    with pytest.raises(RateLimited, match="all candidates failed"):
        manager.call_model(model_name="gpt-4", prompt="hi")
    assert sim.stats()["providers"]["openai"]["requests"] == 3  # 1 call + 2 retries
    assert sim.stats()["providers"].get("anthropic", {}).get("requests", 0) == 0  # no fallbacks
    assert len(sleep.calls) == 2 and all(s >= 0.05 for s in sleep.calls)
    sim.configure("openai", rate_429=0.0)
    assert manager.call_model(model_name="gpt-4", prompt="hi")["model"] == "gpt-4"


def test_long_retry_after_moves_on_without_waiting(sim):
    sleep = RecordingSleep()
    config = documented_config(sim, fallbacks={"gpt-4": ["claude-2"]})
    manager = LLMProviderManager(config=config, env={}, sleep=sleep, max_wait_s=5)
    sim.configure("openai", rate_429=1.0, retry_after_s=600)
    result = manager.call_model(model_name="gpt-4", prompt="hi")
    assert result["model"] == "claude-2"
    assert sleep.calls == []


def test_long_retry_after_with_no_fallback_gives_up_without_waiting(sim):
    sleep = RecordingSleep()
    manager = LLMProviderManager(config=documented_config(sim), env={}, sleep=sleep, max_wait_s=5)
    sim.configure("openai", rate_429=1.0, retry_after_s=600)
    with pytest.raises(RateLimited) as info:  # no fallbacks configured: no other model
        manager.call_model(model_name="gpt-4", prompt="hi")
    assert info.value.retry_after == 600 and sleep.calls == []
    # the deployment now cools down: the next call does not even reach the provider
    with pytest.raises(LLMProviderError, match="cooling down"):
        manager.call_model(model_name="gpt-4", prompt="hi")
    assert sim.stats()["providers"]["openai"]["requests"] == 1


def test_auth_failure_is_not_retried(sim):
    config = documented_config(sim, fallbacks={"gpt-4": ["claude-2"]})
    config.providers[LLMProvider.OPENAI] = config.providers[LLMProvider.OPENAI].model_copy(
        update={"api_key": None}
    )
    manager = LLMProviderManager(config=config, env={"OPENAI_API_KEY": "bad-key-1"})
    result = manager.call_model(model_name="gpt-4", prompt="hi")
    assert result["model"] == "claude-2"
    assert sim.stats()["providers"]["openai"]["requests"] == 1


def test_all_candidates_failing_raises_last_class(sim):
    config = documented_config(sim, fallbacks={"gpt-4": ["claude-2"]})
    manager = LLMProviderManager(config=config, env={}, sleep=RecordingSleep(), max_retries=0)
    # Retry-After outlasts the test: gpt-4 still cools down when claude-2 has failed too
    sim.configure("openai", rate_429=1.0, retry_after_s=5)
    sim.configure("anthropic", rate_429=1.0, retry_after_s=5)
    with pytest.raises(RateLimited) as info:
        manager.call_model(model_name="gpt-4", prompt="hi")
    assert "openai/gpt-4" in str(info.value) and "anthropic/claude-2" in str(info.value)
    assert info.value.provider == "anthropic"


def test_missing_keys_are_reported(sim):
    config = LLMConfig(
        providers={"openai": {"api_base": sim.api_base("openai")}},
        models=[LLMModelConfig(name="gpt-4", provider="openai")],
    )
    manager = LLMProviderManager(config=config, env={})
    status = manager.get_provider_status("openai")
    assert (status["key_present"], status["status"]) == (False, "no_key")
    assert "OPENAI_API_KEY" in status["message"]
    assert manager.get_provider_status("cohere")["configured"] is False
    with pytest.raises(AuthFailed, match="OPENAI_API_KEY"):
        manager.call_model(prompt="hi")
    assert sim.stats()["total_requests"] == 0


def test_env_key_used_when_config_has_none(sim):
    config = LLMConfig(
        providers={"openai": {"api_base": sim.api_base("openai")}},
        models=[LLMModelConfig(name="gpt-4", provider="openai")],
    )
    manager = LLMProviderManager(config=config, env={"OPENAI_API_KEY": "sk-from-env"})
    assert manager.call_model(prompt="hi")["provider"] == "openai"


def test_documented_llmconfig_object(sim):
    config = LLMConfig(
        default_provider=LLMProvider.OPENAI,
        providers={LLMProvider.OPENAI: {"api_base": sim.api_base("openai"), "organization": "org-123"}},
        models=[
            LLMModelConfig(
                name="gpt-4", provider=LLMProvider.OPENAI, api_key="sk-...",
                max_tokens=8192, temperature=0.7, is_default=True,
            )
        ],
    )  # fmt: skip
    manager = LLMProviderManager(config=config)
    try:
        result = manager.call_model(
            model_name="gpt-4",
            prompt="Translate to French: Hello world",
            max_tokens=10,
            temperature=0.3,
        )
    except LLMProviderError as e:  # the document's error handling shape
        pytest.fail(f"Error: {e}")
    assert result["response"]


def test_config_none_loads_yaml_and_env(sim, tmp_path):
    path = tmp_path / "llm_config.yaml"
    path.write_text(
        f"""
providers:
  anthropic:
    api_base: "{sim.api_base("anthropic")}"
models:
  - name: "claude-2"
    provider: "anthropic"
""",
        encoding="utf-8",
    )
    manager = LLMProviderManager(env={"LLMQ_CONFIG": str(path), "ANTHROPIC_API_KEY": "sk-ant-x"})
    assert manager.call_model(prompt="Hello, how are you?")["provider"] == "anthropic"


@pytest.mark.parametrize("mode", ["usage_absurd", "usage_negative"])
def test_untrusted_usage_is_never_passed_on_or_priced(manager, sim, mode):
    """Issue 20: the direct path, like the queue, never reports 1e20 or negative tokens."""
    sim.configure("openai", hostile=mode)
    try:
        result = manager.call_model(prompt="Hello")
    finally:
        sim.configure("openai", hostile=None)
    assert result["usage"]["estimated"] is True and result["usage"]["prompt_tokens"] == 0
    assert result["cost_usd"] is None and result["usage_problem"]
    assert manager.call_model(prompt="Hello")["usage_problem"] is None
