"""Secrets kept out of llmq's logs: the redacting filter and where the secrets come from.

Owns: `RedactionFilter` (scrubs configured key values and key-shaped text from a record, in
place), `REDACTED`, and collecting the values to scrub: `config_secrets` (an LLMConfig's keys
and credential headers), `env_secrets` (credential-looking environment variables) and
`register_secrets` (add values to the handlers already set up). Must not: set up handlers or
formats (workers/observability/logs.py does) or read any file: callers pass the config or
the environment in. Redaction is a safety net, not permission: callers still never pass
secrets to a logger.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from core.secrets_scrub import REDACTED, SECRETS, Scrubber
from core.secrets_scrub import config_secrets as _config_secrets

# Why each pattern: OpenAI/Anthropic-style keys start with sk-; Authorization headers carry
# "Bearer <token>" (OpenAI, Cohere, HF, local) ; Anthropic and Google send the key in
# x-api-key / x-goog-api-key; Google also accepts ?key= in the query string.
_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9_\-\.=:/+~]+"),
    re.compile(
        r"(?i)([\"']?(?:x-api-key|x-goog-api-key|api[_-]?key|authorization)[\"']?\s*[:=]\s*)"
        r"([\"']?)(?!\[REDACTED\])[^\s\"',;}&)]+"
    ),
    re.compile(r"(?i)([?&]key=)[^&\s\"']+"),
)
# A text containing none of these (case-insensitive) cannot match any pattern above, so the
# filter skips the regexes for it: "sk-" (pattern 1), "bearer" (2), "key" / "authorization"
# (3: x-api-key, x-goog-api-key, api_key, apikey, authorization), "key=" (4). Configured secret
# values are replaced after the patterns, whatever they look like. Not "token": every
# provider_call line has prompt_tokens, and no pattern keys on that word.
_TRIGGERS: tuple[str, ...] = ("sk-", "bearer", "key", "authorization")
# Records carry these standard attributes; anything else came in via `extra=`.
_STD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def _pattern_sub(text: str) -> str:
    text = _PATTERNS[0].sub(REDACTED, text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _PATTERNS[2].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _PATTERNS[3].sub(lambda m: f"{m.group(1)}{REDACTED}", text)


class RedactionFilter(logging.Filter):
    """Scrubs configured key values and key-shaped patterns from a record, in place.

    Parameters:
        secrets: literal secret values (every configured API key); each is replaced whole and
            by any fragment of 8 or more characters (`core.secrets_scrub.Scrubber`), as is
            every secret the process registered with `core.secrets_scrub`.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._scrubber = Scrubber(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        self._scrubber.add(secrets)

    def scrub(self, text: str) -> str:
        # Patterns first: a configured secret's fragment replaced first could cut the `sk-` or
        # `Bearer` a pattern needs and leave the rest of an unconfigured key in clear.
        lowered = text.lower()
        if any(t in lowered for t in _TRIGGERS):  # else no pattern can match (issue 10)
            text = _pattern_sub(text)
        return SECRETS.scrub(self._scrubber.scrub(text))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self.scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
            # exc_text now stands for the exception; keeping exc_info would let another
            # formatter re-render the unscrubbed traceback.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STD_ATTRS:
                record.__dict__[key] = self._scrub_value(value)
        return True

    def _scrub_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, Mapping):
            return {k: self._scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._scrub_value(v) for v in value)
        return value


def config_secrets(config: Any) -> list[str]:
    """Every secret in an LLMConfig: keys (per provider and per deployment, listed or in key
    files) and configured header values (`core.secrets_scrub.config_secrets`)."""
    return _config_secrets(config)


def register_secrets(secrets: Iterable[str]) -> None:
    """Add secret values to every redacting handler on the root logger (e.g. keys read from the
    config once the worker's runtime is built)."""
    values = list(secrets)
    for handler in logging.getLogger().handlers:
        for flt in handler.filters:
            if isinstance(flt, RedactionFilter):
                flt.add_secrets(values)


_SECRET_ENV = re.compile(r"(?i)(API_?KEY|TOKEN|SECRET|PASSWORD)")


def env_secrets(env: Mapping[str, str]) -> list[str]:
    """Values of environment variables that look like credentials (OPENAI_API_KEY, HF_TOKEN, ...)
    and the password half of FLOWER_BASIC_AUTH."""
    found = [v for k, v in env.items() if _SECRET_ENV.search(k) and v]
    for pair in env.get("FLOWER_BASIC_AUTH", "").split(","):
        found.append(pair.partition(":")[2])
    return found
