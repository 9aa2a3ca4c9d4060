"""The Celery worker's logging hooks: set up llmq's logging, log lifecycle and task failures.

Owns: `install_worker_signals`, which connects Celery's setup_logging (llmq's redacting
handler, JSON if LLMQ_LOG_JSON, with every configured key as a secret), worker_ready,
worker_shutdown, task_failure and task_retry signals to handlers logging one line each under
`llmq.worker`; on worker_ready, SIGHUP is made to re-read key files
(`workers.providers.keys`). Must not: log task arguments other than ids, or fail the worker's start: a
config that does not load only leaves its keys to the patterns (the runtime reports it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from workers.observability.logs import setup_logging
from workers.observability.redaction import config_secrets, env_secrets


def _configured_secrets(env: Mapping[str, str]) -> list[str]:
    """Keys from llm_config.yaml / .env, if a config loads; a broken config is reported by the
    runtime later, logging must still come up."""
    try:
        from workers.providers.config import load_config

        return config_secrets(load_config(env.get("LLMQ_CONFIG"), env))
    except Exception:  # noqa: BLE001 - any config problem: fall back to env values + patterns
        return []


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
    from workers.providers.keys import install_sighup_reload

    pool = getattr(getattr(sender, "controller", None), "pool_cls", None)
    # SIGHUP re-reads key files (Celery's own handler would restart the whole worker).
    reload_on_hup = install_sighup_reload()
    _log.info(
        "worker_ready hostname=%s pool=%s concurrency=%s sighup_reloads_keys=%s",
        getattr(sender, "hostname", "?"),
        getattr(pool, "__name__", pool),
        getattr(getattr(sender, "controller", None), "concurrency", "?"),
        reload_on_hup,
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
