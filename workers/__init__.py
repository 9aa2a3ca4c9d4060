"""Everything behind the queue: the Celery app, tasks, providers, routing, ledger and quota.

`celery -A workers worker` finds the app here. It is imported lazily so that code which only
needs, say, `core.errors` (the producer's config loader) does not pay for Celery at start.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from workers.app import app

        return app
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
