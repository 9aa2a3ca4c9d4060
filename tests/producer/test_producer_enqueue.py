"""core.publish publishes real Celery protocol-2 messages: a real Celery worker consumes
them (in order, honouring a countdown), other transports take the send_task path, a dead
broker fails fast with a count, and the names match the worker's."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery, Task
from celery.contrib.testing.worker import start_worker
from kombu import Connection
from producer_testlib import decode, queued_messages

from core.names import JOB_QUEUE, PROCESS_JOB_TASK
from core.publish import EnqueueError, enqueue_job_ids


class Recorder:
    """What the consumer worker received: (job id, arrival unix time) in order."""

    def __init__(self) -> None:
        self.received: list[tuple[str, float]] = []
        self.expected = 0
        self.done = threading.Event()

    def expect(self, n: int) -> None:
        self.expected = n

    def record(self, job_id: str) -> None:
        self.received.append((job_id, time.time()))
        if len(self.received) >= self.expected:
            self.done.set()


@pytest.fixture()
def consumer(redis_url: str) -> Iterator[Recorder]:
    """A Celery worker thread (its own app, same broker) whose `llmq.process_job` records ids."""
    app = Celery("llmq-test-consumer", broker=redis_url, set_as_current=False)
    app.conf.update(
        task_default_queue=JOB_QUEUE, task_ignore_result=True, worker_hijack_root_logger=False
    )
    recorder = Recorder()

    class Record(Task):  # type: ignore[misc]
        name = PROCESS_JOB_TASK

        def run(self, job_id: str) -> None:
            recorder.record(job_id)

    # The real `llmq.process_job` is a shared task (imported with `workers`) and joins every
    # app on finalize; replace it in this app's registry so the worker only records ids.
    app.finalize(auto=True)
    Record.bind(app)
    app.tasks.register(Record)

    with start_worker(
        app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10
    ):
        yield recorder


@pytest.mark.timeout(90)
def test_a_real_celery_worker_runs_the_messages_in_order(
    redis_url: str, consumer: Recorder
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    consumer.expect(len(ids))
    assert enqueue_job_ids(redis_url, ids) == 5
    assert consumer.done.wait(30), f"worker received only {consumer.received}"
    assert [job_id for job_id, _ in consumer.received] == ids


@pytest.mark.timeout(90)
def test_countdown_sets_an_eta_the_worker_honours(redis_url: str, consumer: Recorder) -> None:
    consumer.expect(1)
    job_id = str(uuid.uuid4())
    sent_at = time.time()
    enqueue_job_ids(redis_url, [job_id], countdown=1.0)
    assert consumer.done.wait(30)
    [(got, arrived)] = consumer.received
    assert got == job_id
    assert arrived >= sent_at + 1.0  # ordering of events, not a duration bound


def test_messages_are_chunked_yet_complete_and_ordered(redis_url: str) -> None:
    ids = [uuid.uuid4() for _ in range(2345)]
    assert enqueue_job_ids(redis_url, ids, chunk=1000) == 2345
    bodies = [decode(m)["body"][0] for m in queued_messages(redis_url)]
    assert bodies == [[str(i)] for i in ids]


def test_countdown_message_has_an_eta_header(redis_url: str) -> None:
    enqueue_job_ids(redis_url, [uuid.uuid4()], countdown=30)
    [message] = queued_messages(redis_url)
    assert decode(message)["headers"]["eta"] is not None


def test_other_transports_use_send_task() -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    got = []
    # the memory transport keeps one process-wide queue per name: start from an empty one
    with Connection("memory://") as conn, conn.SimpleQueue(JOB_QUEUE) as queue:
        queue.clear()
        assert enqueue_job_ids("memory://", ids) == 3
        for _ in ids:
            message = queue.get(timeout=5)
            got.append((message.headers["task"], message.headers["argsrepr"], message.payload[0]))
            message.ack()
    assert got == [(PROCESS_JOB_TASK, i, [i]) for i in ids]


def test_non_uuid_ids_are_refused_before_publishing(redis_url: str) -> None:
    with pytest.raises(EnqueueError) as info:
        enqueue_job_ids(redis_url, [uuid.uuid4(), "not-a-uuid"])
    assert info.value.sent == 0
    assert queued_messages(redis_url) == []


def test_unreachable_broker_fails_fast_with_a_count() -> None:
    with pytest.raises(EnqueueError) as info:
        enqueue_job_ids("redis://127.0.0.1:1/0", [uuid.uuid4()])
    assert info.value.sent == 0
    assert "broker error" in str(info.value)


def test_the_worker_consumes_what_the_producer_publishes() -> None:
    """Both sides take the names from core.names; this checks the worker really uses them."""
    from workers import celeryconfig, tasks

    assert celeryconfig.task_default_queue == JOB_QUEUE
    assert tasks.process_job.name == PROCESS_JOB_TASK
    assert tasks.app.amqp.router.route({}, PROCESS_JOB_TASK)["queue"].name == JOB_QUEUE


# ---- chunks (issue 21) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "chunk", "single"),
    [(0, 3, 0), (6, 9, 6), (3, 3, 0), (9, 9, 6), (None, None, None)],
)
def test_chunk_and_single_priorities(priority, chunk, single) -> None:  # type: ignore[no-untyped-def]
    from core.publish import chunk_priority, single_priority

    if priority is not None and priority in (0, 6):
        assert chunk_priority(priority) == chunk
    assert single_priority(priority) == single


@pytest.mark.parametrize(
    ("lengths", "jobs"),
    [
        ({0: 0, 3: 0, 6: 0, 9: 0}, 0),
        ({0: 2, 3: 1, 6: 5, 9: 0}, 57),
        ({0: 0, 3: 0, 6: 0, 9: 4}, 200),
    ],
)
def test_backlog_counts_chunk_messages_at_their_capacity(lengths, jobs) -> None:  # type: ignore[no-untyped-def]
    from core.publish import backlog_jobs

    assert backlog_jobs(lengths, per_message=50) == jobs


def test_chunk_messages_carry_ids_in_order_and_a_count(redis_url: str) -> None:
    from core.names import PROCESS_CHUNK_TASK
    from core.publish import BULK_PRIORITY, JOBS_PER_MESSAGE
    from workers.sweeper import broker_backlog

    ids = [str(uuid.uuid4()) for _ in range(120)]
    assert enqueue_job_ids(redis_url, ids, per_message=50, priority=BULK_PRIORITY) == 120
    envs = [decode(m) for m in queued_messages(redis_url)]
    assert [e["headers"]["task"] for e in envs] == [PROCESS_CHUNK_TASK] * 3
    assert [e["headers"]["llmq_jobs"] for e in envs] == [50, 50, 20]
    assert [i for e in envs for i in e["body"][0][0]] == ids
    assert {e["properties"]["priority"] for e in envs} == {9}
    # counted at the producer's chunk capacity (3 x 48 >= 120): never low
    assert broker_backlog(JOB_QUEUE, redis_url) == 3 * JOBS_PER_MESSAGE
