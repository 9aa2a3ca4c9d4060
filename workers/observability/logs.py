"""Logging for llmq processes: one format (plain lines or JSON), secrets scrubbed from every record.

Owns: `setup_logging` (handlers, formatter, redaction), `RedactionFilter`, `log_provider_call`
(the one structured line per provider call) and `install_worker_signals` (Celery worker
lifecycle and task failures, logged with context).

Must not: decide anything, touch the ledger, or log prompts, completions or task arguments other
than ids. Redaction is a safety net, not permission: callers still never pass secrets to a logger.

The filter sits on the *handlers* (a logger-level filter misses records propagated from child
loggers), so every record that reaches an output is scrubbed: message, arguments, extra fields,
exception text and stack text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

PROVIDER_CALL_EVENT = "provider_call"
REDACTED = "[REDACTED]"
_MIN_SECRET_LEN = 6  # shorter "keys" would blank ordinary words; real keys are far longer

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
# values are replaced before this check, whatever they look like. Not "token": every
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
        secrets: literal secret values (every configured API key); longest replaced first so a
            key that contains another is not half-replaced.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        merged = {s for s in (*self._secrets, *secrets) if s and len(s) >= _MIN_SECRET_LEN}
        self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        lowered = text.lower()
        if not any(t in lowered for t in _TRIGGERS):
            return text  # fast path: no pattern can match (issue 10: regexes cost per line)
        return _pattern_sub(text)

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


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, structured fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "llmq_fields", None)
        event = getattr(record, "llmq_event", None)
        if event and isinstance(fields, Mapping):
            doc["msg"] = event
            doc.update(fields)
        else:
            doc["msg"] = record.getMessage()
            if isinstance(fields, Mapping):
                doc.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return json.dumps(doc, default=_json_default, ensure_ascii=False)


CELERY_QUIET_LOGGERS = ("celery.app.trace", "celery.worker.strategy")
PER_JOB_TASKS = frozenset({"llmq.process_job"})  # workers.tasks.TASK_NAME (not imported: no app)


class PerJobTaskQuiet(logging.Filter):
    """Drops Celery's INFO "Received task" / "Task ... succeeded" lines for the per-job task.

    Why (issue 10): two lines per job cost ~3 ms CPU with redaction and repeat what our
    provider_call line says. Warnings and errors (task failures) pass, and so do the lines of
    the rare control tasks (sweep, nightly run), which operators and tests read. A logger
    filter rather than level WARNING for that reason; the record is dropped before any handler
    formats or scrubs it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        context = record.args
        return not (isinstance(context, Mapping) and context.get("name") in PER_JOB_TASKS)


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(
    *,
    json_lines: bool = False,
    level: int | str = logging.INFO,
    logfile: str | None = None,
    secrets: Iterable[str] = (),
) -> RedactionFilter:
    """Replace the root logger's handlers with one redacting handler (stderr or `logfile`).

    Idempotent: calling it again swaps the handler, so the CLI and the worker can both call it.
    Returns the filter so callers can add secrets learned later (config reloads).
    """
    handler: logging.Handler
    if logfile:
        handler = logging.FileHandler(logfile, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(PLAIN_FORMAT))
    redactor = RedactionFilter(secrets)
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request URL at INFO; Google's URL may carry ?key=, so keep it at WARNING.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in CELERY_QUIET_LOGGERS:
        celery_logger = logging.getLogger(name)
        if not any(isinstance(f, PerJobTaskQuiet) for f in celery_logger.filters):
            celery_logger.addFilter(PerJobTaskQuiet())
    return redactor


_SECRET_HEADER = re.compile(r"(?i)(auth|key|token|secret)")


def config_secrets(config: Any) -> list[str]:
    """Every API key value in an LLMConfig (per provider and per deployment)."""
    found: list[str] = []
    for settings in getattr(config, "providers", {}).values():
        if settings.api_key is not None:
            found.append(settings.api_key.get_secret_value())
        # custom headers may carry credentials too (a gateway's own auth header)
        found.extend(v for k, v in settings.headers.items() if _SECRET_HEADER.search(k))
    for model in getattr(config, "models", []):
        if model.api_key is not None:
            found.append(model.api_key.get_secret_value())
    return found


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


def log_provider_call(  # noqa: PLR0913 - the one-line-per-call signature agreed in issue #7
    logger: logging.Logger,
    *,
    job_id: Any,
    batch_id: Any,
    attempt_no: int,
    provider: str,
    model: str,
    deployment: str,
    status: int | None,
    outcome: str,
    error_kind: str | None,
    latency_ms: int | float | None,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: Decimal | None,
) -> None:
    """Emit ONE line for one provider call: `provider_call key=value ...` (or a JSON object).

    Parameters: status is the HTTP status (None on transport errors); latency in
    milliseconds; tokens as counted by the provider; cost in USD (None = price unknown).
    Never pass prompt text, completion text or headers here.
    """
    fields: dict[str, Any] = {
        "job_id": str(job_id),
        "batch_id": str(batch_id) if batch_id is not None else None,
        "attempt_no": attempt_no,
        "provider": str(provider),
        "model": model,
        "deployment": deployment,
        "status": status,
        "outcome": str(outcome),
        "error_kind": str(error_kind) if error_kind is not None else None,
        "latency_ms": round(latency_ms) if latency_ms is not None else None,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost_usd": str(cost_usd) if cost_usd is not None else None,
    }
    line = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
    level = logging.INFO if outcome in ("succeeded", "cache_hit") else logging.WARNING
    logger.log(
        level,
        "%s %s",
        PROVIDER_CALL_EVENT,
        line,
        extra={"llmq_event": PROVIDER_CALL_EVENT, "llmq_fields": fields},
    )


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


def _configured_secrets(env: Mapping[str, str]) -> list[str]:
    """Keys from llm_config.yaml / .env, if a config loads; a broken config is reported by the
    runtime later, logging must still come up."""
    try:
        from workers.providers.config import load_config

        return config_secrets(load_config(env.get("LLMQ_CONFIG"), env))
    except Exception:  # noqa: BLE001 - any config problem: fall back to env values + patterns
        return []


# ---- Celery worker signals -------------------------------------------------------------------

_log = logging.getLogger("llmq.worker")


def _on_setup_logging(loglevel: Any = None, logfile: Any = None, **_: Any) -> None:
    import os

    from schemas.settings import load_settings

    settings = load_settings(os.environ)
    setup_logging(
        json_lines=settings.log_json,
        level=loglevel or logging.INFO,
        logfile=logfile or os.environ.get("LLMQ_LOG_FILE") or None,
        secrets=[*env_secrets(os.environ), *_configured_secrets(os.environ)],
    )


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    pool = getattr(getattr(sender, "controller", None), "pool_cls", None)
    _log.info(
        "worker_ready hostname=%s pool=%s concurrency=%s",
        getattr(sender, "hostname", "?"),
        getattr(pool, "__name__", pool),
        getattr(getattr(sender, "controller", None), "concurrency", "?"),
    )


def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    _log.info("worker_shutdown hostname=%s", getattr(sender, "hostname", "?"))


def _on_task_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    # args are job ids by contract; anything else is cut down to its ids so a misused task
    # cannot spill a payload into the log.
    ids = [str(a) for a in (args or ()) if isinstance(a, str) and len(a) <= 64]
    exc_info = (type(exception), exception, getattr(einfo, "tb", None)) if exception else None
    _log.error(
        "task_failure task=%s task_id=%s args=%s error=%s",
        getattr(sender, "name", sender),
        task_id,
        ",".join(ids) or "-",
        type(exception).__name__ if exception else "-",
        exc_info=exc_info,
    )


def _on_task_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    # reason is Celery's Retry; its `exc` is the cause, `when` the countdown (seconds).
    cause = getattr(reason, "exc", None) or reason
    _log.info(
        "task_retry task=%s task_id=%s cause=%s countdown_s=%s",
        getattr(sender, "name", sender),
        getattr(request, "id", "?"),
        type(cause).__name__ if isinstance(cause, BaseException) else cause,
        getattr(reason, "when", None),
    )


def install_worker_signals() -> None:
    """Connect Celery signals: logging setup, worker_ready/shutdown, task failure and retry.

    Call once where the worker imports the app (workers/app.py or workers/tasks.py), before
    the worker sets up logging. `dispatch_uid`s make repeated calls harmless.
    """
    from celery import signals

    hooks = (
        (signals.setup_logging, _on_setup_logging),
        (signals.worker_ready, _on_worker_ready),
        (signals.worker_shutdown, _on_worker_shutdown),
        (signals.task_failure, _on_task_failure),
        (signals.task_retry, _on_task_retry),
    )
    for signal, handler in hooks:
        signal.connect(handler, weak=False, dispatch_uid=f"llmq.{handler.__name__}")
