"""`llm_config.yaml` as the workers need it: checked against `REGISTRY`, keys filled in.

Owns: `load_config` for everything that calls providers (runtime, beat, manager, log
redaction, the CLI's admin commands, the embedded mode): `core.config_file`'s reading and
validation, plus what only the adapters know: each `provider:` must be registered (the same
`ConfigError` naming file, field path and problem), retired endpoints are upgraded with a
warning saying what to write instead (`ProviderAdapter.retired_bases`), and missing keys are
filled from the adapter's `env_keys` (environment first, then `./.env` or $LLMQ_DOTENV; first
name found wins). Must not: name a provider (the adapters do), log or serialise a key, or touch
the network.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from core.config_file import config_source, display_name, read_dotenv, read_yaml, validate
from schemas.config import DIALECTS_CONTEXT, PROVIDERS_CONTEXT, LLMConfig, ProviderSettings
from workers.providers import REGISTRY

log = logging.getLogger(__name__)


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> LLMConfig:
    """Load and validate the config, then fill missing provider keys from env / `.env`.

    Raises:
        ConfigError: the file is missing, not YAML, or not a valid config (an unregistered
            provider included); the message names the file, the field and the problem.
    """
    env = os.environ if env is None else env
    source = config_source(path, env)
    data = upgrade_retired_bases(read_yaml(source), source)
    config = validate(data, source, registry_context())
    return with_env_keys(config, env)


def registry_context() -> dict[str, tuple[str, ...]]:
    """What config validation checks names against: registered providers, known dialects."""
    adapters = [v for a in REGISTRY.values() for v in (a, *a.variants)]
    dialects = dict.fromkeys(a.dialect for a in adapters if a.dialect)
    return {PROVIDERS_CONTEXT: tuple(REGISTRY), DIALECTS_CONTEXT: tuple(dialects)}


def upgrade_retired_bases(data: dict[str, Any], source: Path) -> dict[str, Any]:
    """Replace retired provider endpoints by their successors, warning once per load."""
    providers = data.get("providers")
    if not isinstance(providers, dict):
        return data
    for provider, settings in providers.items():
        adapter = REGISTRY.get(str(provider))
        if adapter is None or not isinstance(settings, dict):
            continue
        base = settings.get("api_base")
        new = adapter.upgraded_base(base) if isinstance(base, str) else None
        if new:
            log.warning(
                "%s: providers.%s.api_base %s is retired; using %s instead. "
                "Write `api_base: %s` to silence this warning.",
                display_name(source),
                provider,
                base,
                new,
                new,
            )
            providers[provider] = {**settings, "api_base": new}
    return data


def with_env_keys(config: LLMConfig, env: Mapping[str, str]) -> LLMConfig:
    """A copy of `config` whose providers without a key get one from env, else `.env`.

    Keys written in the config (per provider or per model) are kept: they are more specific.
    """
    dotenv = read_dotenv(env)
    providers = dict(config.providers)
    for provider, adapter in REGISTRY.items():
        current = providers.get(provider) or ProviderSettings()
        if current.api_key is not None:
            continue
        names = adapter.env_keys
        value = next((src[n] for src in (env, dotenv) for n in names if src.get(n)), None)
        if value:
            providers[provider] = current.model_copy(update={"api_key": SecretStr(value)})
    return config.model_copy(update={"providers": providers})


def key_env_names() -> set[str]:
    """Every env var name any registered provider reads its key from."""
    return {name for adapter in REGISTRY.values() for name in adapter.env_keys}
