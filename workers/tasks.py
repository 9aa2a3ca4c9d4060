"""Celery tasks. Thin, like a web view: decode the job id, run the pipeline, map its outcome.

Owns: the task `llmq.process_job(job_id)` and the worker-start hook that builds the runtime.
Must not: carry anything but job ids in messages (prompts and keys stay in Postgres), return
data (there is no result backend), sleep on a wait (a wait is a countdown message plus
`not_before` in the ledger), or decide anything (the pipeline and its pure modules do).

The pipeline and runtime are imported on first use, not at module import: `import workers`
(which the producer does for the ledger repos) must stay free of provider and routing code.
After the first task they are plain lookups in `sys.modules`.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from celery import Task
from celery.signals import worker_init, worker_shutdown
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.errors import InfraError
from core.names import PROCESS_JOB_TASK
from workers.app import app

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

# Our own Postgres/Redis failing: retry the message with back-off; the job row is untouched
# (or handed back), and the sweeper re-sends whatever these retries do not cover.
INFRA_ERRORS = (
    OperationalError,
    InterfaceError,
    PoolTimeout,  # every pooled connection busy for pool_timeout seconds
    RedisConnectionError,
    RedisTimeoutError,
    InfraError,
)
INFRA_MAX_RETRIES = 8
INFRA_BACKOFF_MAX_S = 60.0


@app.task(name=PROCESS_JOB_TASK, bind=True, ignore_result=True, acks_late=True)
def process_job(self: Task, job_id: str) -> str:
    """Run one attempt of job `job_id`; re-send the id when the job must run again later."""
    from workers.chunk.calls import one_slot
    from workers.pipeline import run_job
    from workers.runtime import get_runtime

    priority = (self.request.delivery_info or {}).get("priority")
    try:
        rt, job_uuid = get_runtime(), UUID(job_id)
        # one of the process's call slots (issue 21: chunks and one-job runs share them),
        # and its lease renewed by heartbeat while this run lasts
        with one_slot(rt.calls_in_flight, int(priority or 0)), held(rt, job_uuid):
            outcome = run_job(job_uuid, rt, datetime.now(UTC))
    except INFRA_ERRORS as exc:
        countdown = min(2.0**self.request.retries, INFRA_BACKOFF_MAX_S)
        log.warning("job %s: infrastructure error, retry in %.0fs: %s", job_id, countdown, exc)
        raise self.retry(
            countdown=countdown, max_retries=INFRA_MAX_RETRIES, argsrepr=job_id
        ) from exc
    if outcome.countdown_s is not None:
        send_job(job_id, outcome.countdown_s, priority)
    return outcome.status  # shown in Flower; never the result itself


def held(rt: Runtime, job_id: UUID) -> AbstractContextManager[None]:
    """The heartbeat's `holding(job_id)`, or nothing when this process has no heartbeat."""
    return rt.heartbeat.holding(job_id) if rt.heartbeat is not None else nullcontext()


def send_job(job_id: str, countdown_s: float = 0.0, priority: int | None = None) -> None:
    """Publish `llmq.process_job(job_id)`, deliverable after `countdown_s` seconds, at the
    priority of the message it replaces (a bulk batch's retry must not jump the small ones)."""
    process_job.apply_async(
        (job_id,),
        countdown=countdown_s if countdown_s > 0 else None,
        argsrepr=job_id,
        priority=priority,
    )


@worker_init.connect
def _build_runtime_at_start(sender: object = None, **_: object) -> None:
    """Build the runtime before the first message, so a bad config stops the worker at start
    (ConfigError) instead of failing every job; pools are sized to the worker's threads."""
    from workers.runtime import get_runtime

    threads = getattr(sender, "concurrency", None)
    rt = get_runtime(concurrency=threads if isinstance(threads, int) else None)
    # Another app's worker in this process (a test's) fires the signal too: no heartbeat.
    if rt.heartbeat is None and getattr(sender, "app", None) is app:
        from workers.heartbeat import start_heartbeat

        # one thread per process renews every lease this worker holds (issue 20, item 11)
        rt.heartbeat = start_heartbeat(rt.sessions, rt.settings)


@worker_shutdown.connect
def _stop_heartbeat(sender: object = None, **_: object) -> None:
    """After the last task ended: stop beating and delete the worker's row."""
    from workers.heartbeat import stop_heartbeat
    from workers.runtime import get_runtime

    try:
        rt = get_runtime()
    except Exception:  # noqa: BLE001 - it never started (bad config): nothing beats
        return
    stop_heartbeat(rt.heartbeat)


from workers import sweeper as _sweeper  # noqa: E402, F401 - registers the `llmq.sweep` task
from workers.chunk import task as _chunk  # noqa: E402, F401 - registers `llmq.process_chunk`
from workers.lanes import task as _lanes  # noqa: E402, F401 - registers the batch-lane tasks
from workers.nightly import task as _nightly  # noqa: E402, F401 - registers `llmq.nightly_run`
