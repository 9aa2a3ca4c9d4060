"""Publish `llmq.process_job` task messages, job ids only, to the `llmq` queue, pipelined.

Owns: turning job ids into real Celery protocol-2 messages on the broker. Used by submit and
resume here, and by the sweeper. Must not: import `workers` (no provider code, no worker
settings), or put anything in a message but the job id: prompts live in Postgres, so the
broker and Flower only ever see ids.

Why not `app.send_task` in a loop: it costs ~0.4-0.7 ms per message (~40 s for 100k jobs,
measured), almost all of it Python overhead. On a Redis broker this module builds one message
through Celery and kombu themselves (`app.amqp.as_task_v2`, the channel's `prepare_message`
and `encode_body`, the routing that `basic_publish` applies), so headers, properties and body
are what `send_task` produces; each job then gets its own task id (also its delivery tag) and
body, and the messages go out as multi-value LPUSHes over one connection (~15-25 us each).
Like `send_task` for a direct queue, messages use the anonymous exchange: they land in the
`llmq` list even if kombu's binding keys were lost with a Redis restart. Unlike it, no
`task-sent` event is emitted (Flower shows each task once a worker receives it).
Other transports (``memory://`` in the embedded mode, AMQP) fall back to `send_task` inside a
kombu publish batch. Either way a failure raises `EnqueueError` saying how many were sent.

Small batches first (issue 21): kombu's Redis transport keeps one list per priority step and
its workers BRPOP them in order, `llmq` (priority 0) before `llmq\x06\x166`. A batch of more
than SMALL_BATCH_JOBS jobs is published at BULK_PRIORITY, so a 10-job batch submitted while a
100k-job batch drains waits for the calls in flight, not for the 100k. Big batches stay FIFO
among themselves; a retry keeps its message's priority (Celery copies it).

Chunks (issue 21): the producer publishes `llmq.process_chunk([id, ...])`, up to
JOBS_PER_MESSAGE ids per message, so Celery's cost per message (receive, ack, events) is paid
once per chunk. Chunk messages use their own priority steps, one above the single-job step of
the same class (small 3, bulk 9), so the order stays small singles, small chunks, bulk singles,
bulk chunks, and the sweeper can count the jobs waiting (`backlog_jobs`) from list lengths
alone. A chunk's retries and the sweeper's re-sends are single-job messages.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from celery import Celery
from kombu.serialization import dumps as kombu_dumps
from kombu.transport.redis import PRIORITY_STEPS as _PRIORITY_STEPS

from core.names import JOB_QUEUE, PROCESS_CHUNK_TASK, PROCESS_JOB_TASK

CHUNK = 1000  # messages per LPUSH / publish batch
SMALL_BATCH_JOBS = 1000  # up to this many jobs, a batch goes to the front list
INTERACTIVE_PRIORITY = 0  # Redis: 0 is served first (the plain `llmq` list)
BULK_PRIORITY = 6  # one of kombu's default priority steps (0, 3, 6, 9)
CHUNK_STEP = 3  # a chunk message's priority: its jobs' single-job priority + 3 (0->3, 6->9)
JOBS_PER_MESSAGE = 48  # ids per `llmq.process_chunk` message: three waves of 16 (workers/chunk/run.py)
JOBS_HEADER = "llmq_jobs"  # a chunk message's job count, in its headers (Flower shows it)
_TASK, _JOB, _TAG, _BODY = "@@TASK_ID@@", "@@JOB_ID@@", "@@DELIVERY_TAG@@", "@@BODY@@"
_COUNT = "@@COUNT@@"
# Fail fast instead of kombu's default of retrying the connection forever: the ledger already
# holds the jobs and the sweeper re-sends them, so a stuck submit helps nobody.
TRANSPORT_OPTIONS = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
    "socket_connect_timeout": 5,
    "socket_timeout": 15,
}


class EnqueueError(RuntimeError):
    """Publishing stopped part-way; `sent` messages made it to the broker."""

    def __init__(self, message: str, sent: int) -> None:
        super().__init__(message)
        self.sent = sent


def priority_for_batch(total_jobs: int) -> int:
    """The message priority of every job of a batch of `total_jobs` (see the docstring)."""
    return INTERACTIVE_PRIORITY if total_jobs <= SMALL_BATCH_JOBS else BULK_PRIORITY


def chunk_priority(priority: int) -> int:
    """The priority step of a chunk message whose jobs have single-job `priority`."""
    return min(priority + CHUNK_STEP, _PRIORITY_STEPS[-1])


def single_priority(priority: int | None) -> int | None:
    """The single-job priority of a job that came in a message of `priority` (a chunk's
    retry must join the single-job list of its class, not the chunk list)."""
    if priority is None:
        return None
    return priority - CHUNK_STEP if priority % (2 * CHUNK_STEP) == CHUNK_STEP else priority


def backlog_jobs(lengths: dict[int, int], per_message: int = JOBS_PER_MESSAGE) -> int:
    """Jobs waiting, from the message count of each priority step: single-job steps count one
    job a message, chunk steps `per_message` (an upper bound: a batch's last chunk may be
    short, so the sweeper errs towards re-sending less, never towards a flood)."""
    return sum(
        n * (per_message if p % (2 * CHUNK_STEP) == CHUNK_STEP else 1) for p, n in lengths.items()
    )


def redis_queue_keys(queue: str = JOB_QUEUE) -> list[str]:
    """The Redis lists that hold `queue`'s messages, served first to last (kombu's naming)."""
    return [queue] + [f"{queue}\x06\x16{step}" for step in _PRIORITY_STEPS[1:]]


def enqueue_job_ids(
    broker_url: str,
    ids: Iterable[uuid.UUID | str],
    countdown: float | None = None,
    *,
    chunk: int = CHUNK,
    priority: int = INTERACTIVE_PRIORITY,
    per_message: int = 1,
) -> int:
    """Publish `llmq.process_job(job_id)` messages, or with `per_message` > 1
    `llmq.process_chunk([job_id, ...])` messages of up to that many ids, in order, over one
    connection.

    Args:
        broker_url: the Celery broker URL (LLMQ_BROKER_URL).
        ids: job ids; each message's args are ``[str(id)]`` and its argsrepr is the id.
        countdown: seconds before a worker may run the task (sets the message ETA).
        chunk: messages per round trip.
        priority: the jobs' priority (`priority_for_batch`; on Redis 0 is served first);
            chunk messages go to `chunk_priority(priority)`.
        per_message: job ids per message (1 = `llmq.process_job` messages).

    Returns:
        The number of job ids published.

    Raises:
        EnqueueError: the broker failed; `sent` says how many ids were published before.
    """
    app = _app(broker_url)
    sent = 0
    try:
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            per = max(1, per_message)
            pri = chunk_priority(priority) if per > 1 else priority
            if conn.transport.driver_type == "redis" and hasattr(channel, "conn_or_acquire"):
                publish = _RedisPublisher(app, channel, countdown, pri, per)
            else:
                publish = _SendTaskPublisher(app, conn, countdown, pri, per)
            for group in _chunks(map(_id_str, ids), max(chunk, per) // per * per):
                publish(group)
                sent += len(group)
    except Exception as exc:  # noqa: BLE001 - any broker failure: report how far we got
        raise EnqueueError(f"broker error after {sent} message(s): {exc!r}", sent) from exc
    finally:
        app.close()
    return sent


def _app(broker_url: str) -> Celery:
    """A bare Celery app: just enough to build protocol-2 messages for `broker_url`."""
    app = Celery("llmq-producer", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=JOB_QUEUE,
        broker_transport_options=TRANSPORT_OPTIONS,
        broker_connection_timeout=5,
        timezone="UTC",
        enable_utc=True,
    )
    return app


def _id_str(job_id: uuid.UUID | str) -> str:
    """The canonical id text; strings are checked, so only a UUID ever reaches a message."""
    return str(job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(job_id))


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while group := list(islice(it, size)):
        yield group


class _RedisPublisher:
    """Template-built messages, one LPUSH per chunk (see the module docstring)."""

    def __init__(  # noqa: PLR0913 - the app, its channel and the messages' shape
        self, app: Celery, channel: Any, countdown: float | None, priority: int, per: int = 1
    ) -> None:
        self.channel = channel
        self.per = per
        name, args = (PROCESS_CHUNK_TASK, [[_JOB]]) if per > 1 else (PROCESS_JOB_TASK, [_JOB])
        task = app.amqp.as_task_v2(_TASK, name, args=args, argsrepr=_JOB, countdown=countdown)
        if per > 1:
            task.headers[JOBS_HEADER] = _COUNT
        ctype, cenc, body = kombu_dumps(task.body, serializer="json")
        self.body_head, self.body_tail = body.split(_JOB)
        props = {**task.properties, "delivery_mode": 2}
        message = channel.prepare_message(_BODY, priority, ctype, cenc, task.headers, props)
        # What virtual.Channel.basic_publish adds for the default (anonymous) exchange:
        _, self.body_encoding = channel.encode_body(body, channel.body_encoding)
        message["properties"]["body_encoding"] = self.body_encoding
        message["properties"]["delivery_info"] = {"exchange": "", "routing_key": JOB_QUEUE}
        message["properties"]["delivery_tag"] = _TAG  # kombu keys unacked messages by it
        # Placeholders are substituted as text: every value is a UUID or base64, both of
        # which are JSON-safe, and each placeholder occurs only where a value belongs.
        self.template = json.dumps(message)
        # the list kombu's _put would choose for this priority (0 -> the plain queue list)
        self.key = channel._q_for_pri(JOB_QUEUE, priority)

    def _message(self, job_ids: list[str]) -> str:
        # One fresh uuid4 serves as task id and delivery tag: both only need to be unique per
        # message (a Celery retry or a sweeper re-send publishes a new message with a new tag),
        # and a second uuid4 per message costs ~0.4 s per 100k jobs.
        task_id = str(uuid.uuid4())
        body = self.body_head + '", "'.join(job_ids) + self.body_tail
        encoded, _ = self.channel.encode_body(body, self.body_encoding)
        return (
            self.template.replace(_TASK, task_id)
            .replace(_JOB, ",".join(job_ids))  # argsrepr: the ids (Flower shows them)
            .replace(f'"{_COUNT}"', str(len(job_ids)))
            .replace(_TAG, task_id)
            .replace(_BODY, encoded)
        )

    def __call__(self, job_ids: list[str]) -> None:
        # LPUSH k m1 m2 ... leaves m1 nearest the tail that workers BRPOP: order is kept.
        messages = [self._message(g) for g in _chunks(job_ids, self.per)]
        with self.channel.conn_or_acquire() as client:
            client.lpush(self.key, *messages)


class _SendTaskPublisher:
    """Any other transport: Celery's own send_task, batched where kombu supports it."""

    def __init__(  # noqa: PLR0913 - the app, its connection and the messages' shape
        self, app: Celery, conn: Any, countdown: float | None, priority: int, per: int = 1
    ) -> None:
        self.app = app
        self.producer = app.amqp.Producer(conn, auto_declare=False)
        self.countdown = countdown
        self.priority = priority
        self.per = per

    def __call__(self, job_ids: list[str]) -> None:
        batch = getattr(self.producer, "batch", None)  # kombu >= 5.7
        if batch is None:
            self._send(job_ids)
            return
        with batch(len(job_ids)):
            self._send(job_ids)

    def _send(self, job_ids: list[str]) -> None:
        if self.per > 1:
            for group in _chunks(job_ids, self.per):
                self._one(PROCESS_CHUNK_TASK, [group], ",".join(group), {JOBS_HEADER: len(group)})
            return
        for job_id in job_ids:
            self._one(PROCESS_JOB_TASK, [job_id], job_id, None)

    def _one(self, name: str, args: list[Any], argsrepr: str, headers: dict | None) -> None:
        self.app.send_task(
            name,
            args=args,
            argsrepr=argsrepr,
            headers=headers,
            queue=JOB_QUEUE,
            countdown=self.countdown,
            priority=self.priority,
            producer=self.producer,
        )
