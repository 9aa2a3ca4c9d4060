"""Every Celery setting llmq uses, with the reasoning (see shared/reference/celery-notes.md).

Postgres is the record of which jobs exist; Redis only carries job ids. These settings make
delivery at-least-once; the claim in the ledger makes the effect exactly-once.

Must not: read `llm_config.yaml` or anything but the environment at import (every process
that touches the Celery app imports this, the producer's tools included). Beat's schedule
needs the config's `nightly.time`, so it is built when beat starts, by `beat_scheduler`
(workers/beat.py), not here. Task and queue names come from core/names.py.
"""

from __future__ import annotations

import os

from kombu import Exchange, Queue

from core.names import CONTROL_QUEUE, JOB_QUEUE, QUEUES, SWEEP_TASK
from schemas.settings import load_settings

_settings = load_settings(os.environ)

broker_url = _settings.broker_url
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # never give up: the sweeper re-sends whatever was lost
broker_pool_limit = 32  # thread-pool tasks publish retries concurrently
broker_transport_options = {
    # > longest call (120 s read timeout) + longest countdown (300 s) + margin, so an ETA
    # message is never restored to a second worker while the first still holds it.
    "visibility_timeout": _settings.visibility_timeout_s,
    "socket_connect_timeout": 5,
    "socket_timeout": 15,
    "socket_keepalive": True,
    "retry_on_timeout": True,
    "health_check_interval": 25,
    # kombu >= 5.7: scan for expired unacked messages every 10 s (default: every 10th of
    # 10 s ticks, ~100 s), so a killed worker's messages come back soon after the timeout.
    "unacked_restore_interval": min(10, max(1, _settings.visibility_timeout_s // 3)),
    "unacked_restore_throttle": 1,
}

task_acks_late = True  # a worker killed mid-task leaves its message to be redelivered
task_reject_on_worker_lost = True  # prefork child death requeues; the DB attempt fence stops loops
# The ledger, not Celery, decides what to retry: ack failed and timed-out tasks. (celery 5.7
# split task_acks_on_failure_or_timeout, now deprecated, into these two; both default True.)
task_acks_on_failure = True
task_acks_on_timeout = True
worker_prefetch_multiplier = 1  # hold only what runs: less to lose, nothing ages in a buffer
task_ignore_result = True  # results live in Postgres; no result backend
task_store_errors_even_if_ignored = False
task_serializer = "json"
accept_content = ["json"]
task_default_queue = JOB_QUEUE
# Periodic tasks (sweep, nightly run) get their own queue, so a long job backlog never delays
# them; a worker started without -Q consumes both.
# Each queue has its own direct exchange and routing key (Celery would otherwise bind every
# queue to the default exchange with the default routing key, delivering jobs to both).
task_queues = tuple(Queue(q, Exchange(q), routing_key=q) for q in QUEUES)
task_routes = {SWEEP_TASK: {"queue": CONTROL_QUEUE}}
worker_eta_task_limit = 200  # bounds countdown messages held in memory

worker_pool = "threads"
worker_concurrency = _settings.worker_concurrency
worker_soft_shutdown_timeout = 30.0  # warm phase to finish calls and requeue reserved messages
worker_enable_soft_shutdown_on_idle = True
worker_cancel_long_running_tasks_on_connection_loss = False  # the lease fences duplicates
worker_hijack_root_logger = False

worker_send_task_events = True  # Flower
task_send_sent_event = True

timezone = "UTC"
enable_utc = True

# celery beat (`llmq beat` or `celery -A workers beat`): the sweeper, plus the nightly run at
# the config's `nightly.time`. The scheduler builds those entries as beat starts (reading the
# config then); entries set in `beat_schedule` are kept beside them.
beat_scheduler = "workers.beat:LlmqScheduler"
