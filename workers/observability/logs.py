"""Logging for llmq processes: one format (plain lines or JSON), secrets scrubbed from every record.

Owns: `setup_logging` (the root handler, its formatter and its redaction filter), the JSON
line format (`JsonFormatter`), quieting Celery's per-job lines (`PerJobTaskQuiet`) and
`log_provider_call` (the one structured line per provider call). What is scrubbed lives in
workers/observability/redaction.py; the Celery worker's signal hooks in worker_signals.py.

Must not: decide anything, touch the ledger, or log prompts, completions or task arguments other
than ids.

The redaction filter sits on the *handlers* (a logger-level filter misses records propagated
from child loggers), so every record that reaches an output is scrubbed: message, arguments,
extra fields, exception text and stack text.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.names import PROCESS_CHUNK_TASK, PROCESS_JOB_TASK
from workers.observability.redaction import RedactionFilter

PROVIDER_CALL_EVENT = "provider_call"


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
PER_JOB_TASKS = frozenset({PROCESS_JOB_TASK, PROCESS_CHUNK_TASK})


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
