"""The Celery tasks beat sends for provider batch lanes (issue 18): flush and poll.

Owns: `llmq.flush_batches` (every few seconds: pending items -> provider batches, see flush.py)
and `llmq.poll_batches` (every `batch_lane.poll_s`: open provider batches -> applied results,
see poll.py), and publishing the ids of jobs sent back to routing. Must not: decide or write
anything itself. Both are acked at start: a lost run is harmless, the next comes soon.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from core.names import FLUSH_BATCHES_TASK, POLL_BATCHES_TASK
from workers.app import app

log = logging.getLogger(__name__)


def _publish(broker_url: str, ids: Sequence[uuid.UUID]) -> None:
    if not ids:
        return
    from core.publish import enqueue_job_ids

    try:
        enqueue_job_ids(broker_url, list(ids))
    except Exception as exc:  # noqa: BLE001 - the sweeper re-sends them (enqueued_at is set)
        log.warning("batch lanes: could not publish %d job ids: %s", len(ids), exc)


@app.task(name=FLUSH_BATCHES_TASK, ignore_result=True, acks_late=False)
def flush_batches() -> dict[str, Any]:
    from workers.lanes.flush import flush_once
    from workers.runtime import get_runtime

    rt = get_runtime()
    counts = flush_once(rt, datetime.now(UTC))
    if counts.created or counts.adopted or counts.failed:
        log.info("batch lanes: flush %s", counts)
    return {"created": counts.created, "adopted": counts.adopted, "items": counts.items}


@app.task(name=POLL_BATCHES_TASK, ignore_result=True, acks_late=False)
def poll_batches() -> dict[str, Any]:
    from workers.lanes.poll import poll_once
    from workers.runtime import get_runtime

    rt = get_runtime()
    counts = poll_once(rt, datetime.now(UTC))
    _publish(rt.settings.broker_url, counts.requeued)
    if counts.ended or counts.cancelled:
        log.info("batch lanes: poll %s", counts)
    return {"polled": counts.polled, "ended": counts.ended, "applied": counts.applied}
