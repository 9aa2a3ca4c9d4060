"""Small batches do not wait behind big ones (issue 21): a batch of more than SMALL_BATCH_JOBS
jobs is published at bulk priority, which kombu's Redis transport keeps in a list that workers
read only when the front list is empty. Real submit, real Redis, a real worker process."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis
from helpers.jobs import states, wait_settled
from helpers.llm_config import load_test_config, model

from core.publish import (
    BULK_PRIORITY,
    INTERACTIVE_PRIORITY,
    SMALL_BATCH_JOBS,
    enqueue_job_ids,
    priority_for_batch,
    redis_queue_keys,
)
from producer.client import Client


@pytest.mark.parametrize(
    ("jobs", "priority"),
    [
        (1, INTERACTIVE_PRIORITY),
        (SMALL_BATCH_JOBS, INTERACTIVE_PRIORITY),
        (SMALL_BATCH_JOBS + 1, BULK_PRIORITY),
        (100_000, BULK_PRIORITY),
    ],
)
def test_priority_for_batch(jobs: int, priority: int) -> None:
    assert priority_for_batch(jobs) == priority


def test_each_priority_lands_in_the_list_kombu_reads_for_it(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        enqueue_job_ids(redis_url, [uuid.uuid4() for _ in range(3)], priority=BULK_PRIORITY)
        enqueue_job_ids(redis_url, [uuid.uuid4()])
        front, *later = redis_queue_keys()
        assert client.llen(front) == 1
        assert [client.llen(key) for key in later] == [0, 3, 0]  # steps 3, 6, 9
        message = json.loads(client.lindex(later[1], 0))
        assert message["properties"]["priority"] == BULK_PRIORITY  # restored to the same list
    finally:
        client.close()


def _write(path: Path, n: int, tag: str) -> Path:
    lines = (json.dumps({"custom_id": f"{tag}-{i}", "prompt": f"{tag} item {i}"}) for i in range(n))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_small_batch_submitted_after_a_big_one_finishes_first(rig, sim) -> None:  # type: ignore[no-untyped-def]
    config = rig.configure([model("m", "openai", is_default=True)])
    sim.configure("openai", latency_ms=20)
    big_n = SMALL_BATCH_JOBS + 500
    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        big = client.submit(_write(rig.tmp_path / "big.jsonl", big_n, "big"))
        small = client.submit(_write(rig.tmp_path / "small.jsonl", 10, "small"))
    # Both are on the broker before any worker reads: FIFO would run all of `big` first.
    rig.start(concurrency=4)
    assert wait_settled(rig.engine, small, 60, on_timeout=rig.logs) == {"succeeded": 10}
    done_of_big = states(rig.engine, big).get("succeeded", 0)
    assert done_of_big < big_n // 2, done_of_big
