"""The Celery application instance. Settings come from workers.celeryconfig; nothing else here
but the logging hooks, which must be connected before a worker or beat sets up logging."""

from __future__ import annotations

from celery import Celery

from workers.observability.worker_signals import install_worker_signals

app = Celery("llmq")
app.config_from_object("workers.celeryconfig")
app.autodiscover_tasks(["workers"], related_name="tasks", force=True)
install_worker_signals()  # redacted (optionally JSON) logs; worker lifecycle and task failures
