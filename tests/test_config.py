"""llm_config.yaml loading: the documented example unchanged, where the file comes from, keys
from env and .env, retired endpoints, and one clear error for every kind of bad config."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from core.config_file import BUILTIN, config_source
from core.errors import ConfigError
from schemas import LLMProvider
from workers.providers import REGISTRY
from workers.providers.config import load_config

REPO = Path(__file__).resolve().parents[1]

# Verbatim from AI_BackLog_Assistant's LLM_PROVIDER_CONFIGURATION.md.
DOCUMENTED_YAML = """\
default_provider: "openai"

providers:
  openai:
    api_base: "https://api.openai.com/v1"
    organization: "your-org-id"

  anthropic:
    api_base: "https://api.anthropic.com"

  huggingface:
    api_base: "https://api-inference.huggingface.co"

models:
  - name: "gpt-4"
    provider: "openai"
    max_tokens: 8192
    temperature: 0.7
    is_default: true

  - name: "claude-2"
    provider: "anthropic"
    max_tokens: 100000
    temperature: 0.7

  - name: "llama-2-7b"
    provider: "huggingface"
    max_tokens: 4096
    temperature: 0.7
"""


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty directory (no ./llm_config.yaml, no ./.env)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_documented_example_loads_unchanged(in_tmp, caplog):
    caplog.set_level(logging.WARNING)
    config = load_config(write(in_tmp / "llm_config.yaml", DOCUMENTED_YAML), env={})
    assert config.default_provider is LLMProvider.OPENAI
    assert config.model_names() == ["gpt-4", "claude-2", "llama-2-7b"]
    assert config.default_model_name() == "gpt-4"
    gpt4 = config.deployments_for("gpt-4")[0]
    assert (gpt4.max_tokens, gpt4.temperature, gpt4.model_id) == (8192, 0.7, "gpt-4")
    openai = config.providers[LLMProvider.OPENAI]
    assert (openai.api_base, openai.organization) == ("https://api.openai.com/v1", "your-org-id")
    assert config.providers[LLMProvider.ANTHROPIC].api_base == "https://api.anthropic.com"


def test_legacy_huggingface_base_maps_to_router_with_warning(in_tmp, caplog):
    caplog.set_level(logging.WARNING)
    config = load_config(write(in_tmp / "c.yaml", DOCUMENTED_YAML), env={})
    assert config.providers[LLMProvider.HUGGINGFACE].api_base == "https://router.huggingface.co/v1"
    warning = next(r for r in caplog.records if "api-inference.huggingface.co" in r.getMessage())
    assert warning.levelno == logging.WARNING
    assert "api_base: https://router.huggingface.co/v1" in warning.getMessage()


def test_file_found_via_env_then_cwd_then_builtin(in_tmp):
    cwd_file = write(in_tmp / "llm_config.yaml", DOCUMENTED_YAML)
    other = write(in_tmp / "other.yaml", "models: [{name: x, provider: cohere}]\n")
    assert config_source(None, {"LLMQ_CONFIG": other}) == Path(other)
    assert load_config(env={"LLMQ_CONFIG": other}).model_names() == ["x"]
    assert config_source("explicit.yaml", {"LLMQ_CONFIG": other}) == Path("explicit.yaml")
    assert config_source(None, {}) == Path("llm_config.yaml")
    assert load_config(env={}).model_names() == ["gpt-4", "claude-2", "llama-2-7b"]
    Path(cwd_file).unlink()
    assert config_source(None, {}) == BUILTIN


def test_builtin_default_covers_six_providers(in_tmp):
    config = load_config(env={})
    assert {m.provider for m in config.models} == set(LLMProvider)
    assert config.default_model_name() is not None
    assert all(m.provider in config.providers for m in config.models)


def test_example_points_every_provider_at_the_simulator():
    config = load_config(str(REPO / "examples" / "llm_config.yaml"), env={})
    assert {m.provider for m in config.models} == set(LLMProvider)
    for provider, settings in config.providers.items():
        assert settings.api_base.startswith("http://127.0.0.1:8900/"), provider


def test_keys_from_env_dotenv_and_config(in_tmp):
    write(in_tmp / ".env", 'ANTHROPIC_API_KEY="sk-ant-dotenv"\nOPENAI_API_KEY=sk-dotenv\n')
    path = write(
        in_tmp / "c.yaml",
        "providers:\n  cohere:\n    api_key: co-from-yaml\n"
        "models:\n  - {name: a, provider: openai}\n  - {name: b, provider: google, api_key: g-model}\n",
    )
    env = {"OPENAI_API_KEY": "sk-env", "COHERE_API_KEY": "co-env", "HF_TOKEN": "hf-alias"}
    config = load_config(path, env=env)

    def key(p: str) -> str | None:
        settings = config.providers.get(LLMProvider(p))
        return settings.api_key.get_secret_value() if settings and settings.api_key else None

    assert key("openai") == "sk-env"  # environment beats .env
    assert key("anthropic") == "sk-ant-dotenv"  # .env fills what the environment lacks
    assert key("cohere") == "co-from-yaml"  # the file's own key is more specific
    assert key("huggingface") == "hf-alias"
    assert key("google") is None
    assert config.models[1].api_key.get_secret_value() == "g-model"


def test_every_key_name_that_worked_is_on_its_adapter():
    # The loader reads each adapter's `env_keys`, first found wins; aliases included.
    assert {str(p): cls.env_keys for p, cls in REGISTRY.items()} == {
        "openai": ("OPENAI_API_KEY",),
        "anthropic": ("ANTHROPIC_API_KEY",),
        "google": ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
        "cohere": ("COHERE_API_KEY", "CO_API_KEY"),
        "huggingface": ("HUGGINGFACE_API_KEY", "HF_TOKEN"),
        "local": ("LOCAL_LLM_API_KEY",),
    }


BAD_CONFIGS = [
    # (yaml, substrings the one error message must contain)
    (
        "models:\n  - {name: a, provider: openai}\n  - {name: b, provider: openai}\n"
        "  - {name: c, provider: mistral}\n",
        ["models[2].provider", "mistral", "'openai'"],
    ),
    ("models:\n  - {provider: openai}\n", ["models[0].name", "Field required"]),
    ("models:\n  - {name: a, provider: openai, max_tokens: -5}\n", ["models[0].max_tokens", "greater than 0"]),
    ("models:\n  - {name: a, provider: openai, temprature: 0.2}\n", ["models[0].temprature", "unknown field"]),
    ("default_provider: nope\n", ["default_provider", "nope"]),
    ("providers:\n  mistral: {api_base: 'https://x.ai'}\n", ["providers.mistral", "mistral"]),
    ("providers:\n  openai: {api_base: 'http://api.example.com/v1'}\n", ["providers.openai", "https://", "allow_insecure_http"]),
    ("models:\n  - {name: a, provider: openai}\n  - {name: a, provider: openai}\n", ["models[1]", "repeated"]),
    ("models:\n  - {name: a, provider: openai}\nfallbacks:\n  a: [zz]\n", ["fallbacks.a", "zz"]),
    ("routing:\n  strategy: fastest\n", ["routing.strategy", "fastest"]),
    ("- just\n- a list\n", ["top level must be a mapping"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "needles"), BAD_CONFIGS)
def test_bad_config_gives_one_clear_error(in_tmp, text, needles):
    path = write(in_tmp / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for needle in needles:
        assert needle in message
    assert "\n" not in message and "errors.pydantic.dev" not in message


def test_yaml_syntax_error_names_the_line(in_tmp):
    path = write(in_tmp / "bad.yaml", 'models:\n  - name: "a"\n    provider: openai\n   bad: [\n')
    with pytest.raises(ConfigError, match=r"YAML syntax error at line \d+") as info:
        load_config(path, env={})
    assert info.value.line in (3, 4)
    assert str(info.value).startswith(path)


def test_missing_file_is_a_config_error(in_tmp):
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_config(env={"LLMQ_CONFIG": "nope.yaml"})


def test_empty_file_is_an_empty_config(in_tmp):
    assert load_config(write(in_tmp / "empty.yaml", ""), env={}).models == []


def test_loopback_http_is_allowed(in_tmp):
    path = write(
        in_tmp / "c.yaml",
        "providers:\n  local: {api_base: 'http://localhost:8000/v1'}\n"
        "  openai: {api_base: 'http://10.0.0.5/v1'}\n"
        "  cohere: {api_base: 'http://cohere.example.com', allow_insecure_http: true}\n",
    )
    assert load_config(path, env={}).providers[LLMProvider.LOCAL].api_base.startswith("http://")


def test_config_error_pickles(in_tmp):
    with pytest.raises(ConfigError) as info:
        load_config(write(in_tmp / "bad.yaml", "default_provider: nope\n"), env={})
    back = pickle.loads(pickle.dumps(info.value))
    assert str(back) == str(info.value) and back.field == "default_provider"
