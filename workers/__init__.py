"""Everything behind the queue: the Celery app, tasks, providers, routing, ledger and quota.

`celery -A workers worker` finds the app here.
"""

from workers.app import app

__all__ = ["app"]
