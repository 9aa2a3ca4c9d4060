"""The nightly run on the queue: the Celery task `llmq.nightly_run` and `send_run`.

Owns: the task beat sends at `nightly.time` (workers/beat.py) and `send_run`, which sends the
same message by hand (`llmq nightly run`). Must not: do any of the run's work (workers/
nightly/run.py does, the same code `llmq nightly run --now` calls in-process) or put anything
in a message but the run's date. Imported by workers/tasks.py, which registers the task.
"""

from __future__ import annotations

import logging
from datetime import date

from core.ledger import nightly_repo
from core.ledger.db import session_scope
from core.names import CONTROL_QUEUE, NIGHTLY_RUN_TASK
from workers.app import app
from workers.nightly.context import NightlyContext, utcnow
from workers.nightly.run import run_nightly, scheduled_date

log = logging.getLogger("workers.nightly")  # the run's log lines stay under one logger


@app.task(name=NIGHTLY_RUN_TASK, ignore_result=True, acks_late=True)
def nightly_run(run_date: str | None = None) -> str:
    """The run beat sends at `nightly.time` (UTC), `run_date` filled in by beat.

    acks_late: a worker killed mid-run leaves the message to be redelivered, and the next
    delivery resumes the run. A copy delivered while the run is still going (the broker's
    visibility timeout is shorter than a long night) finds the lock held and returns "busy".
    """
    from core.publish import BULK_PRIORITY, JOBS_PER_MESSAGE
    from workers.runtime import get_runtime
    from workers.sweeper import publish_ids

    rt = get_runtime()
    # a backlog run is bulk work: interactive batches submitted meanwhile go first
    publish = publish_ids(rt.settings.broker_url, BULK_PRIORITY, JOBS_PER_MESSAGE)
    ctx = NightlyContext(rt.sessions, rt.engine, rt.config, publish)
    day = (
        date.fromisoformat(run_date)
        if run_date
        else scheduled_date(utcnow(), rt.config.nightly.time)
    )
    # An earlier night that crashed where no redelivery could finish it: resume it first.
    with session_scope(ctx.sessions) as s:
        earlier = nightly_repo.unfinished_runs(s, ctx.name, before=day)
    for stale in earlier:
        log.info("nightly: resuming the unfinished run of %s", stale.run_date)
        run_nightly(ctx, stale.run_date)
    return run_nightly(ctx, day).status


def send_run(broker_url: str, run_date: date) -> str:
    """Hand the run for `run_date` to the workers, as beat does; returns the task id."""
    queue = next(q for q in app.amqp.queues.values() if q.name == CONTROL_QUEUE)
    with app.connection_for_write(broker_url) as conn:
        sent = app.send_task(
            NIGHTLY_RUN_TASK,
            kwargs={"run_date": run_date.isoformat()},
            queue=queue,
            declare=[queue],
            connection=conn,
        )
    return str(sent.id)
