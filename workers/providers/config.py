"""`llm_config.yaml` as the workers need it: checked against `REGISTRY`, keys filled in.

Owns: `load_config` for everything that calls providers (runtime, beat, manager, log
redaction, the CLI's admin commands, the embedded mode): `core.config_file`'s reading and
validation, plus what only the adapters know: each `provider:` must be registered (the same
`ConfigError` naming file, field path and problem), retired endpoints are upgraded with a
warning saying what to write instead (`ProviderAdapter.retired_bases`), and missing keys are
filled from the adapter's `env_keys` (environment first, then `./.env` or $LLMQ_DOTENV; first
name found wins; `NAME_FILE` names a key file, `NAMES` a comma-separated list of keys). Keys and
headers with a newline or control character are refused here, naming the variable; plain-HTTP
endpoints given by name must resolve only to loopback / RFC 1918 / ULA addresses
(`resolve_host`, the one network look-up here, with a short timeout, injected into
validation). Every secret
loaded is registered with `core.secrets_scrub`. Must not: name a provider (the adapters do),
log or serialise a key.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from core.config_file import config_source, display_name, read_dotenv, read_yaml, validate
from core.errors import ConfigError
from core.secrets_scrub import config_secrets, register_secrets
from schemas.config import (
    DIALECTS_CONTEXT,
    PROVIDERS_CONTEXT,
    LLMConfig,
    ProviderSettings,
    secret_text_problem,
)
from schemas.hosts import RESOLVE_CONTEXT
from workers.providers import REGISTRY
from workers.providers.embed import can_embed
from workers.providers.keys import read_key_file

log = logging.getLogger(__name__)


Resolver = Callable[[str], Sequence[str]]  # host name -> its addresses; raises OSError
RESOLVE_TIMEOUT_S = 2.0


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    resolve: Resolver | None = None,
) -> LLMConfig:
    """Load and validate the config, then fill missing provider keys from env / `.env`.

    Parameters:
        resolve: host name -> addresses, for plain-HTTP endpoints given by name (default: the
            system resolver with a 2 s timeout; tests inject one).

    Raises:
        ConfigError: the file is missing, not YAML, or not a valid config (an unregistered
            provider included); a key or header is malformed (naming the variable); a
            plain-HTTP endpoint may reach a public address. The message names the file or
            variable, the field and the problem, never a key.
    """
    env = os.environ if env is None else env
    source = config_source(path, env)
    data = upgrade_retired_bases(read_yaml(source), source)
    context = {**registry_context(), RESOLVE_CONTEXT: resolve or resolve_host}
    config = validate(data, source, context)
    check_key_files(config, source)
    check_embedding_models(config, source)
    config = with_env_keys(config, env)
    register_secrets(config_secrets(config))
    return config


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

    For each of the adapter's names (`OPENAI_API_KEY`), in order: the value itself, `NAME_FILE`
    (a key file, re-read on change), `NAMES` (comma-separated keys, used round-robin). Keys
    written in the config (per provider or per model) are kept: they are more specific.

    Raises:
        ConfigError: a key has a newline or control character, or a key file cannot be read;
            the message names the variable, never the key.
    """
    dotenv = read_dotenv(env)
    providers = dict(config.providers)
    for provider, adapter in REGISTRY.items():
        current = providers.get(provider) or ProviderSettings()
        if current.api_key is not None or current.api_keys or current.api_key_file:
            continue
        update = env_key_settings(adapter.env_keys, env, dotenv)
        if update:
            providers[provider] = current.model_copy(update=update)
    return config.model_copy(update={"providers": providers})


def env_key_settings(
    names: Sequence[str], env: Mapping[str, str], dotenv: Mapping[str, str]
) -> dict[str, Any] | None:
    """The provider-settings update for the first key variable set, checked."""
    for src, where in ((env, ""), (dotenv, " (in .env)")):
        for name in names:
            if src.get(name):
                return {"api_key": SecretStr(_checked(name + where, src[name]))}
            if src.get(name + "_FILE"):
                path = src[name + "_FILE"]
                _read_key_file(f"{name}_FILE{where}", path)
                return {"api_key_file": path}
            if src.get(name + "S"):
                values = [v.strip() for v in src[name + "S"].split(",") if v.strip()]
                keys = [_checked(f"{name}S{where} (key {i + 1})", v) for i, v in enumerate(values)]
                if keys:
                    return {"api_keys": [SecretStr(k) for k in keys]}
    return None


def _checked(variable: str, value: str) -> str:
    problem = secret_text_problem(value)
    if problem:
        raise ConfigError(f"{variable}: {problem}", field=variable)
    return value


def _read_key_file(variable: str, path: str) -> str:
    try:
        return read_key_file(path)
    except OSError as exc:
        raise ConfigError(
            f"{variable}: cannot read key file {path}: {exc.strerror or exc}", field=variable
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{variable}: key file {path} {exc}", field=variable) from None


def check_key_files(config: LLMConfig, source: Path) -> None:
    """Every `providers.<name>.api_key_file` in the config holds a readable, valid key."""
    for provider, settings in config.providers.items():
        if settings.api_key_file:
            field = f"{display_name(source)}: providers.{provider}.api_key_file"
            _read_key_file(field, settings.api_key_file)


def check_embedding_models(config: LLMConfig, source: Path) -> None:
    """Every `mode: embedding` deployment is on a provider (dialect) that can embed."""
    for i, m in enumerate(config.models):
        adapter = REGISTRY[m.provider].variant(config.provider_settings(m.provider))
        if m.mode == "embedding" and not can_embed(adapter):
            field = f"{display_name(source)}: models[{i}].mode"
            why = f"provider {m.provider.value!r} has no embeddings endpoint"
            raise ConfigError(f"{field}: {why}", field=f"models[{i}].mode")


def resolve_host(host: str, timeout_s: float = RESOLVE_TIMEOUT_S) -> list[str]:
    """The addresses the system resolver gives `host`, within `timeout_s` (else OSError)."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        infos = pool.submit(socket.getaddrinfo, host, None).result(timeout=timeout_s)
    except FutureTimeout:
        raise OSError(f"no answer within {timeout_s:g} s") from None
    except socket.gaierror as exc:
        raise OSError(exc.strerror or str(exc)) from None
    finally:
        pool.shutdown(wait=False)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def key_env_names() -> set[str]:
    """Every env var name any registered provider reads its key from."""
    return {name for adapter in REGISTRY.values() for name in adapter.env_keys}
