"""Status, results, job timeline, cancel, resume and wait, read from a ledger whose outcomes the
test writes directly (test data: in production only the pipeline writes attempts and results)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from producer_testlib import queued_job_ids
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from core.ledger.models import Attempt, Batch, Job
from producer.client import Client, NotFound

WriteJsonl = Callable[..., Path]
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def submit_n(
    client: Client, write_jsonl: WriteJsonl, n: int, **kw: Any
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    batch_id = client.submit(
        write_jsonl([{"custom_id": f"c{i}", "prompt": f"p{i}"} for i in range(n)]), **kw
    )
    with client.sessions() as s:
        ids = list(s.scalars(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.line_no)))
    return batch_id, ids


def set_job(engine: Engine, job_id: uuid.UUID, **values: Any) -> None:
    with Session(engine) as s, s.begin():
        s.execute(update(Job).where(Job.id == job_id).values(**values))


def add_attempt(engine: Engine, job_id: uuid.UUID, n: int, **fields: Any) -> None:
    row = {
        "provider": "openai",
        "model": "gpt-x",
        "deployment": "openai/gpt-x",
        "outcome": "succeeded",
        "started_at": T0 + timedelta(seconds=n),
        "prompt_tokens": 0,
        "completion_tokens": 0,
        **fields,
    }
    with Session(engine) as s, s.begin():
        job = s.get_one(Job, job_id)  # the tenant charged: the job's at the call
        row = {"tenant": job.tenant, **row}
        s.add(Attempt(job_id=job_id, attempt_no=n, **row))


def succeed(
    engine: Engine, job_id: uuid.UUID, provider: str, text: str, ptok: int, ctok: int
) -> None:
    result = {
        "text": text,
        "finish_reason": "stop",
        "provider": provider,
        "model": "m-default",
        "model_id": f"{provider}-model",
    }
    set_job(
        engine, job_id, state="succeeded", result=result, provider=provider, served_model=f"{provider}-model",
        prompt_tokens=ptok, completion_tokens=ctok, finished_at=T0,
    )  # fmt: skip


@pytest.fixture()
def seeded(
    client: Client, engine: Engine, write_jsonl: WriteJsonl
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Six jobs: succeeded after a 429 (openai), succeeded on anthropic, a cache hit, failed,
    running, still queued."""
    batch_id, ids = submit_n(client, write_jsonl, 6)
    a, b, c, d, e, _f = ids
    add_attempt(
        engine, a, 1, outcome="failed", http_status=429, error_kind="rate_limited", cost_usd=None
    )
    add_attempt(
        engine,
        a,
        2,
        prompt_tokens=10,
        completion_tokens=5,
        cost_usd=Decimal("0.00001234"),
        waited_ms=250,
        latency_ms=40,
    )
    succeed(engine, a, "openai", "answer a", 10, 5)
    set_job(engine, a, attempts=2)
    add_attempt(
        engine,
        b,
        1,
        provider="anthropic",
        model="claude",
        prompt_tokens=7,
        completion_tokens=3,
        cost_usd=Decimal("0.10000001"),
    )
    succeed(engine, b, "anthropic", "answer b", 7, 3)
    set_job(engine, b, attempts=1)
    add_attempt(
        engine,
        c,
        1,
        outcome="cache_hit",
        prompt_tokens=9,
        completion_tokens=9,
        cost_usd=Decimal(0),
        saved_usd=Decimal("0.5"),
    )
    succeed(engine, c, "openai", "answer c", 9, 9)
    set_job(engine, c, attempts=1)
    add_attempt(
        engine,
        d,
        1,
        outcome="failed",
        http_status=400,
        error_kind="bad_request",
        prompt_tokens=4,
        cost_usd=None,
    )
    set_job(
        engine,
        d,
        state="failed",
        attempts=1,
        error={"type": "bad_request", "message": "nope", "status": 400},
    )
    add_attempt(engine, e, 1, outcome="started")
    set_job(engine, e, state="running", attempts=1)
    return batch_id, ids


def test_status_counts_usage_cost_providers_and_cache(client: Client, seeded: Any) -> None:
    batch_id, _ = seeded
    st = client.get_batch(batch_id)
    assert st.total == 6 and st.state == "active" and not st.settled
    data = st.to_json()
    assert data["counts"] == {
        "queued": 1, "running": 1, "succeeded": 3, "failed": 1,
        "cancelled": 0, "quota_exceeded": 0, "deferred": 0, "batched": 0,
    }  # fmt: skip
    # billed attempts only: the cache hit's tokens were not paid for
    assert data["usage"] == {"prompt_tokens": 10 + 7 + 4, "completion_tokens": 5 + 3}
    assert data["cost_usd"] == "0.10001235"  # exact: 0.00001234 + 0.10000001 + 0
    assert data["unpriced_attempts"] == 1  # the failed 400 reported 4 tokens but no price
    assert data["providers"] == {
        "anthropic": {"jobs": 1, "attempts": 1, "cost_usd": "0.10000001"},
        "openai": {"jobs": 2, "attempts": 5, "cost_usd": "0.00001234"},
    }
    assert data["cache"] == {"hits": 1, "saved_usd": "0.50000000"}


def test_results_are_in_input_order_with_response_usage_cost_and_error(
    client: Client, seeded: Any
) -> None:
    batch_id, ids = seeded
    lines = list(client.iter_results(batch_id))
    assert [line["custom_id"] for line in lines] == [f"c{i}" for i in range(6)]
    assert [line["job_id"] for line in lines] == [str(i) for i in ids]
    a, b, c, d, e, f = lines
    assert a == {
        "custom_id": "c0",
        "job_id": str(ids[0]),
        "status": "succeeded",
        "response": {
            "text": "answer a",
            "model": "openai-model",
            "provider": "openai",
            "finish_reason": "stop",
            "tool_calls": [],
            "parsed": None,
        },
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "cached_tokens": 0,  # issue 19: the classes inside the totals
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
        },
        "cost_usd": "0.00001234",
        "attempts": 2,
        "error": None,
    }
    assert b["response"]["provider"] == "anthropic" and b["cost_usd"] == "0.10000001"
    assert c["cost_usd"] == "0.00000000" and c["response"]["text"] == "answer c"
    assert d["response"] is None and d["error"] == {"type": "bad_request", "message": "nope"}
    assert (e["status"], e["response"], e["usage"]) == ("running", None, None)
    assert (f["status"], f["attempts"], f["cost_usd"], f["error"]) == (
        "queued",
        0,
        "0.00000000",
        None,
    )


def test_results_stream_in_order_across_chunks(client: Client, write_jsonl: WriteJsonl) -> None:
    batch_id, ids = submit_n(client, write_jsonl, 2500)
    ids_seen = [line["job_id"] for line in client.iter_results(batch_id, chunk=100)]
    assert ids_seen == [str(i) for i in ids]


def test_job_timeline_lists_attempts_in_order(client: Client, seeded: Any) -> None:
    _, ids = seeded
    t = client.job(ids[0])
    assert t.job["custom_id"] == "c0" and t.job["state"] == "succeeded" and t.job["attempts"] == 2
    assert [
        (a["attempt_no"], a["outcome"], a["http_status"], a["error_kind"]) for a in t.attempts
    ] == [
        (1, "failed", 429, "rate_limited"),
        (2, "succeeded", None, None),
    ]
    second = t.attempts[1]
    assert (second["waited_ms"], second["latency_ms"], second["prompt_tokens"]) == (250, 40, 10)
    assert second["cost_usd"] == Decimal("0.00001234")
    with pytest.raises(NotFound):
        client.job(uuid.uuid4())
    with pytest.raises(NotFound):
        client.job("not-a-uuid")


def test_cancel_stops_waiting_jobs_and_lets_running_ones_finish(
    client: Client, engine: Engine, seeded: Any
) -> None:
    batch_id, ids = seeded
    set_job(engine, ids[3], state="quota_exceeded", error=None)  # parked jobs are cancelled too
    res = client.cancel(batch_id)
    assert (res.cancelled, res.running) == (2, 1)
    st = client.get_batch(batch_id)
    assert st.state == "cancelled"
    assert (st.counts["cancelled"], st.counts["running"], st.counts["succeeded"]) == (2, 1, 3)
    with Session(engine) as s:
        assert s.get(Job, ids[5]).finished_at is not None  # type: ignore[union-attr]


def test_resume_requeues_parked_and_deferred_jobs_and_enqueues_them(
    client: Client, engine: Engine, redis_url: str, write_jsonl: WriteJsonl
) -> None:
    batch_id, ids = submit_n(client, write_jsonl, 4, nightly=True)
    set_job(
        engine, ids[0], state="quota_exceeded", error={"type": "quota_exceeded", "message": "day"}
    )
    set_job(engine, ids[3], state="succeeded")
    assert client.resume(batch_id) == 3
    st = client.get_batch(batch_id)
    assert (st.counts["queued"], st.counts["deferred"], st.counts["quota_exceeded"]) == (3, 0, 0)
    with Session(engine) as s:
        job = s.get(Job, ids[0])
        assert job is not None and job.error is None and job.enqueued_at is not None
    sent = sorted(queued_job_ids(redis_url))
    assert sent == sorted(str(i) for i in ids[:3])
    assert client.resume(batch_id) == 0  # nothing parked any more


def test_wait_returns_once_nothing_can_progress(
    client: Client, engine: Engine, write_jsonl: WriteJsonl
) -> None:
    batch_id, ids = submit_n(client, write_jsonl, 3)
    seen: list[dict[str, int]] = []

    def progress(status: Any) -> None:  # plays the worker: finishes the jobs after the first poll
        seen.append(dict(status.counts))
        if len(seen) == 1:
            set_job(engine, ids[0], state="succeeded")
            set_job(engine, ids[1], state="failed")
            set_job(engine, ids[2], state="quota_exceeded")

    final = client.wait(batch_id, progress=progress, poll_s=0.01)
    assert len(seen) == 2 and seen[0]["queued"] == 3
    assert final.settled and not final.all_succeeded and final.parked == 1
    assert final.state == "active"  # a parked job can still be resumed


def test_wait_timeout_returns_the_last_status(client: Client, write_jsonl: WriteJsonl) -> None:
    batch_id, _ = submit_n(client, write_jsonl, 1)
    assert not client.wait(batch_id, poll_s=0.01, timeout_s=0).settled


def test_batch_is_found_by_a_unique_prefix(
    client: Client, engine: Engine, write_jsonl: WriteJsonl
) -> None:
    batch_id, _ = submit_n(client, write_jsonl, 1)
    assert client.get_batch(str(batch_id)[:8]).batch_id == batch_id
    for bad in ("zzzz", "ab", str(uuid.uuid4())):
        with pytest.raises(NotFound):
            client.get_batch(bad)
    with Session(engine) as s:
        assert s.get(Batch, batch_id) is not None
