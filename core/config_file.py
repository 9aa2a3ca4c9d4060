"""`llm_config.yaml` -> `LLMConfig`, with API keys from the environment.

Owns: finding the file (`path`, else `$LLMQ_CONFIG`, else `./llm_config.yaml`, else the built-in
`core/default_config.yaml`), YAML parsing, turning validation failures into one
`ConfigError` that names the file, the field path (`models[2].provider`) and the problem,
upgrading retired endpoints (with a warning saying what to write instead), and filling
provider keys from OPENAI_API_KEY & co. (environment first, then `./.env` or $LLMQ_DOTENV).
Must not: import provider code (`workers.providers`), log or serialise a key, or touch the
network.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import SecretStr, ValidationError

from core.errors import ConfigError
from schemas.config import LLMConfig, LLMProvider, ProviderSettings

log = logging.getLogger(__name__)

DEFAULT_FILE = "llm_config.yaml"
BUILTIN = Path(__file__).with_name("default_config.yaml")

# Where each provider's key lives in the environment (first name found wins).
API_KEY_ENV: dict[LLMProvider, tuple[str, ...]] = {
    LLMProvider.OPENAI: ("OPENAI_API_KEY",),
    LLMProvider.ANTHROPIC: ("ANTHROPIC_API_KEY",),
    LLMProvider.HUGGINGFACE: ("HUGGINGFACE_API_KEY", "HF_TOKEN"),
    LLMProvider.COHERE: ("COHERE_API_KEY", "CO_API_KEY"),
    LLMProvider.GOOGLE: ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
    LLMProvider.LOCAL: ("LOCAL_LLM_API_KEY",),
}

# Endpoints that no longer serve chat, and what replaces them: (provider, host) -> new base.
RETIRED_BASES: dict[tuple[str, str], str] = {
    ("huggingface", "api-inference.huggingface.co"): "https://router.huggingface.co/v1",
}


def config_source(path: str | None, env: Mapping[str, str]) -> Path:
    """The file to load: explicit path, $LLMQ_CONFIG, ./llm_config.yaml, else the built-in."""
    chosen = path or env.get("LLMQ_CONFIG")
    if chosen:
        return Path(chosen)
    local = Path(DEFAULT_FILE)
    return local if local.is_file() else BUILTIN


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> LLMConfig:
    """Load and validate the config, then fill missing provider keys from env / `.env`.

    Raises:
        ConfigError: the file is missing, not YAML, or not a valid config; the message names
            the file, the field and the problem.
    """
    env = os.environ if env is None else env
    source = config_source(path, env)
    data = read_yaml(source)
    data = upgrade_retired_bases(data, source)
    config = validate(data, source)
    return with_env_keys(config, env)


def read_yaml(source: Path) -> dict[str, Any]:
    name = _display(source)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found", file=name) from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror}", file=name) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(
            f"{name}: YAML syntax error at {where}: {problem}",
            file=name,
            line=mark.line + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}", file=name) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{name}: the top level must be a mapping (default_provider, providers, models), "
            f"not a {type(data).__name__}",
            file=name,
        )
    return data


def upgrade_retired_bases(data: dict[str, Any], source: Path) -> dict[str, Any]:
    """Replace retired provider endpoints by their successors, warning once per load."""
    providers = data.get("providers")
    if not isinstance(providers, dict):
        return data
    for provider, settings in providers.items():
        if not isinstance(settings, dict) or not isinstance(settings.get("api_base"), str):
            continue
        host = _host(settings["api_base"])
        new = RETIRED_BASES.get((str(provider), host))
        if new:
            log.warning(
                "%s: providers.%s.api_base %s is retired; using %s instead. "
                "Write `api_base: %s` to silence this warning.",
                _display(source),
                provider,
                settings["api_base"],
                new,
                new,
            )
            providers[provider] = {**settings, "api_base": new}
    return data


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def validate(data: dict[str, Any], source: Path) -> LLMConfig:
    try:
        return LLMConfig.model_validate(data)
    except ValidationError as exc:
        name = _display(source)
        problems = [_describe(err) for err in exc.errors(include_url=False)]
        first = problems[0]
        more = f" (and {len(problems) - 1} more: " + "; ".join(problems[1:4]) + ")"
        raise ConfigError(
            f"{name}: {first}" + (more if len(problems) > 1 else ""),
            file=name,
            field=first.split(":", 1)[0],
        ) from None


def field_path(loc: tuple[Any, ...]) -> str:
    """('models', 2, 'provider') -> 'models[2].provider'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(err: Any) -> str:
    loc = tuple(err.get("loc", ()))
    message = str(err.get("msg", "invalid"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if loc and loc[-1] == "[key]":
        return f"{field_path(loc[:-1])}: not a valid name here: {message}"
    if err.get("type") == "extra_forbidden":
        return f"{field_path(loc)}: unknown field (check its spelling and indentation)"
    value = err.get("input")
    shown = ""
    if err.get("type") not in ("missing", "value_error") and isinstance(value, str | int | float):
        shown = f" (got {str(value)[:60]!r})"
    if not loc and ":" in message:
        return message  # model-level checks already name their field
    return f"{field_path(loc)}: {message}{shown}"


def _display(source: Path) -> str:
    return "<built-in default_config.yaml>" if source == BUILTIN else str(source)


def read_dotenv(env: Mapping[str, str]) -> dict[str, str]:
    """`.env` (or $LLMQ_DOTENV) values; missing file = nothing."""
    path = Path(env.get("LLMQ_DOTENV") or ".env")
    if not path.is_file():
        return {}
    try:
        from dotenv import dotenv_values  # installed with pydantic-settings
    except ImportError:  # pragma: no cover - a minimal KEY=VALUE reader instead
        return dict(_simple_dotenv(path.read_text(encoding="utf-8")))
    return {k: v for k, v in dotenv_values(path).items() if v}


def _simple_dotenv(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        name, sep, value = line.strip().removeprefix("export ").partition("=")
        value = value.strip().strip("'\"")
        if sep and name and not name.startswith("#") and value:
            yield name.strip(), value


def with_env_keys(config: LLMConfig, env: Mapping[str, str]) -> LLMConfig:
    """A copy of `config` whose providers without a key get one from env, else `.env`.

    Keys written in the config (per provider or per model) are kept: they are more specific.
    """
    dotenv = read_dotenv(env)
    providers = dict(config.providers)
    for provider, names in API_KEY_ENV.items():
        current = providers.get(provider) or ProviderSettings()
        if current.api_key is not None:
            continue
        value = next((src[n] for src in (env, dotenv) for n in names if src.get(n)), None)
        if value:
            providers[provider] = current.model_copy(update={"api_key": SecretStr(value)})
    return config.model_copy(update={"providers": providers})
