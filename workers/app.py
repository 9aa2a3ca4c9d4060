"""The Celery application instance. Settings come from workers.celeryconfig; nothing else here."""

from __future__ import annotations

from celery import Celery

app = Celery("llmq")
app.config_from_object("workers.celeryconfig")
app.autodiscover_tasks(["workers"], related_name="tasks", force=True)
