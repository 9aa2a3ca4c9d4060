"""Submit through `Client` on real Postgres and Redis: one transaction, then job ids only on
the broker; a bad file writes and enqueues nothing; a broker failure after the commit keeps
the batch and says so."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from producer_testlib import decode, queued_job_ids, queued_messages, table_counts
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from test_producer_jsonl import BAD_LINES

from core.ledger.models import Batch, Job
from core.names import PROCESS_CHUNK_TASK
from producer.client import Client, EnqueueFailed, InputError
from schemas.config import LLMConfig
from schemas.job import ChatMessage, JobSpec

WriteJsonl = Callable[..., Path]


def jobs_of(engine: Engine, batch_id: object) -> list[Job]:
    with Session(engine) as s:
        return list(s.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.line_no)))


@pytest.mark.parametrize(("line", "reason"), BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_bad_input_writes_and_enqueues_nothing(
    client: Client,
    engine: Engine,
    redis_url: str,
    write_jsonl: WriteJsonl,
    line: str,
    reason: str,
) -> None:
    path = write_jsonl(
        [{"custom_id": "good-1", "prompt": "p"}, "", line, {"custom_id": "z", "prompt": "q"}]
    )
    with pytest.raises(InputError) as info:
        client.submit(path)
    assert info.value.errors[0].startswith("line 3: ") and reason in info.value.errors[0]
    assert table_counts(engine) == {"batches": 0, "jobs": 0, "attempts": 0}
    assert queued_messages(redis_url) == []


def test_both_formats_are_stored_in_input_order_and_enqueued(
    client: Client, engine: Engine, redis_url: str, write_jsonl: WriteJsonl
) -> None:
    lines = [
        {"custom_id": "n-1", "prompt": "first", "max_tokens": 10, "metadata": {"k": "v"}},
        "",
        {
            "custom_id": "oa-1",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "m-other",
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "second"},
                ],
                "temperature": 0.2,
            },
        },
        {"custom_id": "n-3", "messages": [{"role": "user", "content": "third"}], "cache": False},
    ]
    result = client.submit_detailed(write_jsonl(lines), name="mixed", tenant="team-a")

    assert (result.jobs, result.enqueued, result.state) == (3, 3, "queued")
    assert set(result.timings) == {"parse_s", "insert_s", "enqueue_s"}
    with Session(engine) as s:
        batch = s.get(Batch, result.batch_id)
        assert batch is not None
        assert (batch.name, batch.tenant, batch.total_jobs, batch.state) == (
            "mixed",
            "team-a",
            3,
            "active",
        )
        assert batch.source and batch.source.endswith("batch.jsonl")
    jobs = jobs_of(engine, result.batch_id)
    assert [(j.line_no, j.custom_id, j.model, j.state) for j in jobs] == [
        (1, "n-1", "m-default", "queued"),
        (2, "oa-1", "m-other", "queued"),
        (3, "n-3", "m-default", "queued"),
    ]
    assert all(j.tenant == "team-a" and j.enqueued_at is not None and j.attempts == 0 for j in jobs)
    # the stored spec rebuilds the JobSpec exactly
    rebuilt = JobSpec(**jobs[1].spec, custom_id=jobs[1].custom_id, model=jobs[1].model)
    assert rebuilt.system == "sys" and rebuilt.temperature == 0.2
    assert rebuilt.messages == [ChatMessage(role="user", content="second")]
    assert jobs[0].spec["metadata"] == {"k": "v"} and jobs[0].spec["max_tokens"] == 10
    assert (jobs[0].spec["cache"], jobs[2].spec["cache"]) == (True, False)

    ids = queued_job_ids(redis_url)
    assert ids == [str(j.id) for j in jobs]  # consumed in input order


def test_broker_messages_carry_only_the_job_id(
    client: Client, engine: Engine, redis_url: str, write_jsonl: WriteJsonl
) -> None:
    secret = "TOP-SECRET-PROMPT"
    lines = [
        {
            "custom_id": f"s-{i}",
            "system": f"{secret}-system",
            "prompt": f"{secret}-{i}",
            "metadata": {"m": secret},
        }
        for i in range(3)
    ]
    batch_id = client.submit(write_jsonl(lines))
    job_ids = [str(j.id) for j in jobs_of(engine, batch_id)]

    # issue 21: one `llmq.process_chunk` message carries the batch's ids, and nothing else
    [message] = queued_messages(redis_url)
    assert secret.encode() not in message and b"s-0" not in message  # no prompt, no custom_id
    env = decode(message)
    args, kwargs, _embed = env["body"]
    assert (args, kwargs) == ([job_ids], {})
    headers = env["headers"]
    assert headers["task"] == PROCESS_CHUNK_TASK and headers["llmq_jobs"] == 3
    assert headers["argsrepr"] == ",".join(job_ids) and headers["kwargsrepr"] == "{}"
    assert headers["id"] == headers["root_id"] == env["properties"]["correlation_id"]
    assert env["properties"]["delivery_info"] == {"exchange": "", "routing_key": "llmq"}
    assert env["properties"]["priority"] == 3  # a small batch's chunk step
    assert secret not in json.dumps(env)


def test_nightly_batch_is_deferred_and_not_enqueued(
    client: Client, engine: Engine, redis_url: str, write_jsonl: WriteJsonl
) -> None:
    result = client.submit_detailed(
        write_jsonl([{"custom_id": "a", "prompt": "p"}, {"custom_id": "b", "prompt": "q"}]),
        nightly=True,
    )
    assert (result.state, result.enqueued) == ("deferred", 0)
    jobs = jobs_of(engine, result.batch_id)
    assert [j.state for j in jobs] == ["deferred", "deferred"]
    assert all(j.enqueued_at is None for j in jobs)
    assert queued_messages(redis_url) == []
    status = client.get_batch(result.batch_id)
    assert status.settled and status.parked == 2 and status.counts["deferred"] == 2


def test_no_cache_max_cost_and_model_options_are_stored(
    client: Client, engine: Engine, write_jsonl: WriteJsonl
) -> None:
    path = write_jsonl(
        [{"custom_id": "a", "prompt": "p"}, {"custom_id": "b", "model": "m-default", "prompt": "q"}]
    )
    batch_id = client.submit(path, model="m-other", max_cost_usd="2.5", use_cache=False)
    with Session(engine) as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None
        assert (batch.use_cache, batch.max_cost_usd, batch.default_model) == (
            False,
            Decimal("2.5"),
            "m-other",
        )
    jobs = jobs_of(engine, batch_id)
    assert [(j.model, j.spec["cache"]) for j in jobs] == [("m-other", False), ("m-default", False)]


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "nan", "1e20"])
def test_bad_max_cost_is_rejected_before_writing(
    client: Client, engine: Engine, write_jsonl: WriteJsonl, bad: str
) -> None:
    with pytest.raises(ValueError, match="max_cost_usd"):
        client.submit(write_jsonl([{"custom_id": "a", "prompt": "p"}]), max_cost_usd=bad)
    assert table_counts(engine)["batches"] == 0


def test_specs_from_python_follow_the_file_rules(client: Client, engine: Engine) -> None:
    spec = JobSpec(custom_id="a", messages=[ChatMessage(role="user", content="hi")])
    batch_id = client.submit([spec, spec.model_copy(update={"custom_id": "b", "model": "m-other"})])
    assert [(j.custom_id, j.model) for j in jobs_of(engine, batch_id)] == [
        ("a", "m-default"),
        ("b", "m-other"),
    ]
    with pytest.raises(InputError, match="duplicate custom_id"):
        client.submit([spec, spec])


def test_broker_down_after_commit_keeps_the_batch_and_says_so(
    clean_db: str, cfg: LLMConfig, engine: Engine, write_jsonl: WriteJsonl
) -> None:
    path = write_jsonl([{"custom_id": f"j{i}", "prompt": "p"} for i in range(4)])
    with (
        Client(clean_db, "redis://127.0.0.1:1/0", cfg) as client,
        pytest.raises(EnqueueFailed) as info,
    ):
        client.submit(path)

    err = info.value
    assert (err.jobs, err.sent) == (4, 0)
    assert "IS stored" in str(err) and "sweeper" in str(err)
    jobs = jobs_of(engine, err.batch_id)
    assert len(jobs) == 4 and all(j.state == "queued" and j.enqueued_at is None for j in jobs)
