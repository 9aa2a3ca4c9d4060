"""Provider batch lanes (issue 18): admission to a lane, the flusher, the poller, their tasks.

`admit.py` sends a claimed job with a deadline to a batch lane (pure choice in
workers/routing/lanes.py), `flush.py` turns pending items into provider batches (intent first,
adoption on restart), `poll.py` polls open provider batches and applies each item's outcome
through `apply.py`, `task.py` holds the Celery tasks beat sends. Imports nothing at package
import (the worker loads these on first use).
"""
