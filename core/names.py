"""The Celery task and queue names llmq's messages carry: the one place they are spelled.

Owns: the wire names shared by whoever publishes (the producer's `core.publish`, the sweeper,
the nightly run, `llmq nightly run`) and whoever consumes (`workers/celeryconfig.py`'s queues
and routes, the `@app.task` registrations, beat's entries). A message names its task and queue
by string, so both sides must import these rather than repeat the literals.

Must not: import anything (no Celery, no settings): the producer and the workers both import
it, and renaming a value here is a wire change, since messages already queued carry the old
names.
"""

from __future__ import annotations

# Tasks
PROCESS_JOB_TASK = "llmq.process_job"  # one attempt of one job: workers/tasks.py
PROCESS_CHUNK_TASK = "llmq.process_chunk"  # one attempt of each of up to 48 jobs: workers/chunk/
SWEEP_TASK = "llmq.sweep"  # re-send lost ids, reclaim leases: workers/sweeper.py
NIGHTLY_RUN_TASK = "llmq.nightly_run"  # the nightly backlog run: workers/nightly/task.py
FLUSH_BATCHES_TASK = "llmq.flush_batches"  # batch lanes -> provider batches: workers/lanes/
POLL_BATCHES_TASK = "llmq.poll_batches"  # provider batches -> results: workers/lanes/

# Queues. Jobs go to JOB_QUEUE (Celery's default queue); periodic tasks get their own queue,
# so a long job backlog never delays a sweep or the nightly run.
JOB_QUEUE = "llmq"
CONTROL_QUEUE = "llmq.control"
QUEUES = (JOB_QUEUE, CONTROL_QUEUE)  # what a worker started without -Q consumes
