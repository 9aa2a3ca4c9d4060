"""`llmq submit/status/results/cancel/resume/job` in a subprocess, wired only through
LLMQ_DATABASE_URL, LLMQ_BROKER_URL and LLMQ_CONFIG, against the test Postgres and Redis."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from producer_testlib import decode, queued_job_ids, queued_messages, table_counts
from sqlalchemy import Engine

WriteJsonl = Callable[..., Path]
Llmq = Callable[..., Any]

LINES = [
    {"custom_id": "first", "prompt": "one"},
    {
        "custom_id": "second",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m-other", "messages": [{"role": "user", "content": "two"}]},
    },
    {"custom_id": "third", "messages": [{"role": "user", "content": "three"}], "max_tokens": 9},
]


def test_submit_json_status_results_job_cancel(
    llmq: Llmq, write_jsonl: WriteJsonl, redis_url: str, tmp_path: Path
) -> None:
    done = llmq("submit", str(write_jsonl(LINES)), "--json", "--name", "cli", "--tenant", "t1")
    assert done.returncode == 0, done.stderr
    batch_id = json.loads(done.stdout)["batch_id"]
    assert json.loads(done.stdout) == {"batch_id": batch_id}
    assert "3 jobs queued" in done.stderr and "enqueue" in done.stderr
    assert len(queued_job_ids(redis_url)) == 3

    status = llmq("status", batch_id, "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert set(data) >= {"batch_id", "state", "counts", "usage", "cost_usd", "providers", "cache"}
    assert data["counts"]["queued"] == 3 and data["tenant"] == "t1" and data["name"] == "cli"
    assert data["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}
    assert data["cost_usd"] == "0.00000000"

    table = llmq("status", batch_id[:8])
    assert table.returncode == 0 and batch_id in table.stdout and "queued" in table.stdout

    out = tmp_path / "results.jsonl"
    results = llmq("results", batch_id, "-o", str(out))
    assert results.returncode == 0 and "wrote 3 results" in results.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == ["first", "second", "third"]
    assert set(lines[0]) == {
        "custom_id", "job_id", "status", "response", "usage", "cost_usd", "attempts", "error",
    }  # fmt: skip
    to_stdout = llmq("results", batch_id)
    assert [json.loads(x)["job_id"] for x in to_stdout.stdout.splitlines()] == [
        x["job_id"] for x in lines
    ]

    job = llmq("job", lines[1]["job_id"], "--json")
    assert job.returncode == 0, job.stderr
    assert json.loads(job.stdout)["job"]["custom_id"] == "second"
    assert json.loads(job.stdout)["attempts"] == []
    assert "no attempts yet" in llmq("job", lines[1]["job_id"]).stdout

    cancel = llmq("cancel", batch_id)
    assert cancel.returncode == 0 and "cancelled 3 jobs" in cancel.stdout
    assert json.loads(llmq("status", batch_id, "--json").stdout)["state"] == "cancelled"


def test_bad_file_exits_2_names_file_and_line_and_writes_nothing(
    llmq: Llmq, write_jsonl: WriteJsonl, engine: Engine, redis_url: str
) -> None:
    path = write_jsonl([LINES[0], "", '{"custom_id": "x", "prompt": "p", "max_tokens": -1}'])
    done = llmq("submit", str(path))
    assert done.returncode == 2
    assert str(path) in done.stderr
    assert "line 3: max_tokens must be between 1" in done.stderr
    assert done.stdout == ""
    assert table_counts(engine) == {"batches": 0, "jobs": 0, "attempts": 0}
    assert queued_messages(redis_url) == []


def test_bad_options_exit_2(llmq: Llmq, write_jsonl: WriteJsonl, engine: Engine) -> None:
    path = str(write_jsonl(LINES))
    assert llmq("submit", path, "--max-cost", "lots").returncode == 2
    unknown = llmq("submit", path, "--model", "nope")
    assert unknown.returncode == 2 and "--model: unknown model 'nope'" in unknown.stderr
    assert table_counts(engine)["batches"] == 0


def test_unknown_batch_exits_1(llmq: Llmq) -> None:
    done = llmq("status", "00000000-0000-0000-0000-000000000000")
    assert done.returncode == 1 and "no batch" in done.stderr


def test_wait_on_a_nightly_batch_returns_and_names_the_parked_count(
    llmq: Llmq, write_jsonl: WriteJsonl, redis_url: str
) -> None:
    done = llmq("submit", str(write_jsonl(LINES)), "--nightly", "--wait", "--json")
    assert done.returncode == 1
    final = json.loads(done.stdout)
    assert final["counts"]["deferred"] == 3
    assert "3 parked" in done.stderr and "llmq resume" in done.stderr
    assert queued_messages(redis_url) == []

    resumed = llmq("resume", final["batch_id"])
    assert resumed.returncode == 0 and "re-queued 3 jobs" in resumed.stdout
    assert [decode(m)["body"][0] for m in queued_messages(redis_url)] != []


def test_no_cache_flag_reaches_every_job(
    llmq: Llmq, write_jsonl: WriteJsonl, engine: Engine
) -> None:
    from sqlalchemy import text

    done = llmq("submit", str(write_jsonl(LINES)), "--no-cache", "--max-cost", "1.5", "--json")
    assert done.returncode == 0, done.stderr
    with engine.connect() as conn:
        batch = conn.execute(text("SELECT use_cache, max_cost_usd FROM batches")).one()
        caches = conn.execute(text("SELECT spec FROM jobs")).scalars().all()
    assert (batch.use_cache, str(batch.max_cost_usd)) == (False, "1.50000000")
    assert [s["cache"] for s in caches] == [False, False, False]


def test_broker_down_exits_3_and_says_the_batch_is_stored(
    llmq: Llmq, cli_env: dict[str, str], write_jsonl: WriteJsonl, engine: Engine
) -> None:
    cli_env["LLMQ_BROKER_URL"] = "redis://127.0.0.1:1/0"
    done = llmq("submit", str(write_jsonl(LINES)))
    assert done.returncode == 3
    assert "IS stored (3 jobs)" in done.stderr and "sweeper" in done.stderr
    assert table_counts(engine)["jobs"] == 3
