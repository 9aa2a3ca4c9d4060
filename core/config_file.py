"""`llm_config.yaml` -> `LLMConfig`: finding, reading and validating the file.

Owns: finding the file (`path`, else `$LLMQ_CONFIG`, else `./llm_config.yaml`, else the built-in
`core/default_config.yaml`), YAML parsing, turning validation failures into one `ConfigError`
that names the file, the field path (`models[2].provider`) and the problem, and reading `./.env`
(or $LLMQ_DOTENV). `load_config` here is what the producer needs: no keys, any well-formed
provider name. The workers load through `workers.providers.config.load_config`, which adds what
only the adapters know (registered names, key env names, retired endpoints) on top of these
functions. Must not: import `workers` (provider facts live on the adapters), name a provider,
log or serialise a key, or touch the network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.errors import ConfigError
from schemas.config import LLMConfig

DEFAULT_FILE = "llm_config.yaml"
BUILTIN = Path(__file__).with_name("default_config.yaml")


def config_source(path: str | None, env: Mapping[str, str]) -> Path:
    """The file to load: explicit path, $LLMQ_CONFIG, ./llm_config.yaml, else the built-in."""
    chosen = path or env.get("LLMQ_CONFIG")
    if chosen:
        return Path(chosen)
    local = Path(DEFAULT_FILE)
    return local if local.is_file() else BUILTIN


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> LLMConfig:
    """Load and validate the config as the producer needs it: no keys, names not checked
    against the adapters (the workers' `workers.providers.config.load_config` does both).

    Raises:
        ConfigError: the file is missing, not YAML, or not a valid config; the message names
            the file, the field and the problem.
    """
    env = os.environ if env is None else env
    source = config_source(path, env)
    return validate(read_yaml(source), source)


def read_yaml(source: Path) -> dict[str, Any]:
    name = display_name(source)
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


def validate(
    data: dict[str, Any], source: Path, context: Mapping[str, Any] | None = None
) -> LLMConfig:
    """`data` as an `LLMConfig`, or one `ConfigError`. `context`: pydantic validation context,
    e.g. the registered provider names to check against (see `schemas.config`)."""
    try:
        return LLMConfig.model_validate(data, context=dict(context) if context else None)
    except ValidationError as exc:
        name = display_name(source)
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


def display_name(source: Path) -> str:
    """How error messages and warnings name the file."""
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
