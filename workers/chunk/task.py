"""The Celery task `llmq.process_chunk(job_ids)`: thin, like `llmq.process_job`.

Owns: decoding a chunk's ids, holding them for the heartbeat while the chunk runs
(workers/chunk/run.py), and turning each job's outcome into a message: a job that must run
again later gets its own `llmq.process_job` message, at the single-job priority of the
chunk's class (a bulk batch's retry must not jump the small batches). A bulk chunk that
finds a small batch's message waiting after one of its waves stops there and sends the rest
of its ids again as a new chunk message, so its thread takes the small one next (Celery's
pool threads are few; without this a small batch waited for whole bulk chunks). Must not: carry
anything but job ids (Flower shows the ids and, as the task's result, the outcome counts),
return data, sleep, or decide anything.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import cache
from uuid import UUID

import redis
from celery import Task

from core.names import PROCESS_CHUNK_TASK
from core.publish import (
    BULK_PRIORITY,
    JOBS_HEADER,
    chunk_priority,
    redis_queue_keys,
    single_priority,
)
from workers.app import app
from workers.tasks import INFRA_BACKOFF_MAX_S, INFRA_ERRORS, INFRA_MAX_RETRIES, held, send_job

log = logging.getLogger(__name__)

MAX_CHUNK_IDS = 1000  # a message with more ids was not written by llmq's producer
BULK_CHUNK = chunk_priority(BULK_PRIORITY)  # the priority step of a bulk batch's chunks
SMALL_CHECK_S = 0.05  # how long one look at the small-batch lists is trusted


@app.task(name=PROCESS_CHUNK_TASK, bind=True, ignore_result=True, acks_late=True)
def process_chunk(self: Task, job_ids: list[str]) -> str:
    """Run one attempt of each job of the chunk; re-send the ids that must run again."""
    from workers.chunk.run import run_chunk
    from workers.runtime import get_runtime

    if not isinstance(job_ids, list) or not 0 < len(job_ids) <= MAX_CHUNK_IDS:
        raise ValueError(f"a chunk carries 1 to {MAX_CHUNK_IDS} job ids")
    ids = [UUID(j) for j in job_ids]
    message_priority = _priority(self)
    left: list[UUID] = []
    try:
        rt = get_runtime()
        yield_now = small_work_waiting if message_priority >= BULK_CHUNK else None
        with ExitStack() as stack:  # every lease of the chunk is renewed while it runs
            for job_id in ids:
                stack.enter_context(held(rt, job_id))
            outcomes = run_chunk(
                ids, rt, datetime.now(UTC), message_priority, yield_now=yield_now, left=left
            )
    except INFRA_ERRORS as exc:
        countdown = min(2.0**self.request.retries, INFRA_BACKOFF_MAX_S)
        log.warning(
            "chunk of %d: infrastructure error, retry in %.0fs: %s", len(ids), countdown, exc
        )
        raise self.retry(
            countdown=countdown, max_retries=INFRA_MAX_RETRIES, argsrepr=",".join(job_ids)
        ) from exc
    priority = single_priority((self.request.delivery_info or {}).get("priority"))
    for job_id, outcome in outcomes.items():
        if outcome.countdown_s is not None:
            send_job(str(job_id), outcome.countdown_s, priority)
    if left:  # gave the thread up to smaller work: the rest of the chunk queues again
        send_chunk([str(j) for j in left], message_priority)
    counts = Counter(o.status for o in outcomes.values())
    return " ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "noop"  # shown in Flower


def send_chunk(job_ids: list[str], priority: int) -> None:
    """Publish `llmq.process_chunk(job_ids)` at `priority` (its step, as it came)."""
    process_chunk.apply_async(
        (job_ids,),
        argsrepr=",".join(job_ids),
        priority=priority,
        headers={JOBS_HEADER: len(job_ids)},
    )


def small_work_waiting() -> bool:
    """Whether a small batch's message waits on the broker (Redis: its two lists are not
    empty). Asked by a bulk chunk after each wave; the answer is kept SMALL_CHECK_S per
    process, over one cached client (a kombu connection per question cost 0.2 ms a job)."""
    now = time.monotonic()
    if now - _small_check.at < SMALL_CHECK_S:
        return _small_check.waiting
    client = _broker_client()
    if client is None:
        return False
    try:
        pipe = client.pipeline(transaction=False)
        for key in redis_queue_keys()[:2]:  # steps 0 and 3: small singles and chunks
            pipe.llen(key)
        waiting = any(int(n) for n in pipe.execute())
    except Exception:  # noqa: BLE001 - unknown: keep the thread, the chunk goes on
        log.debug("could not read the broker's small-batch lists", exc_info=True)
        waiting = False
    _small_check.at, _small_check.waiting = now, waiting
    return waiting


class _SmallCheck:
    at = -1e9
    waiting = False


_small_check = _SmallCheck()


@cache
def _broker_client() -> redis.Redis | None:
    """A client of the broker's Redis db (None: the broker is not Redis)."""
    url = app.conf.broker_url or ""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _priority(task: Task) -> int:
    """The message's priority (0 when the transport gives none)."""
    return int((task.request.delivery_info or {}).get("priority") or 0)
