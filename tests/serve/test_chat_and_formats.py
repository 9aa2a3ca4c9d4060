"""POST /v1/chat/completions through the queue; `llmq results --format openai` writes what the
output file holds; and the cookbook script in examples/ runs unchanged against `llmq serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import openai
import pytest
from openai.types.chat import ChatCompletion
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.ledger import quota_limits_repo
from core.ledger.models import ApiBatch, Job
from llmq.cli import app

from .conftest import batch_lines, wait_status, write_lines

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_chat_completion_runs_one_job_through_the_queue(served) -> None:  # type: ignore[no-untyped-def]
    served.rig.start(concurrency=2)
    client = served.client("team-c")

    reply = client.chat.completions.create(
        model="m",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=30,
    )

    assert isinstance(reply, ChatCompletion)
    assert reply.choices[0].message.content.startswith("sim:")
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    with served.rig.engine.connect() as conn:
        job = conn.execute(select(Job.tenant, Job.state, Job.prompt_tokens)).one()
    assert job == ("team-c", "succeeded", reply.usage.prompt_tokens)
    assert served.rig.sim.stats()["total_requests"] == 1


def test_chat_completion_refusals(served) -> None:  # type: ignore[no-untyped-def]
    served.rig.start(concurrency=1)
    client = served.client("team-q")
    hi = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.BadRequestError):  # nothing dropped silently
        client.chat.completions.create(model="m", messages=hi, logprobs=True)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="no-such-model", messages=hi)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=hi, stream=True)
    with Session(served.rig.engine) as s, s.begin():  # a tenant whose quota is spent
        quota_limits_repo.set_limits(
            s, "team-q", "day", Decimal("0.00000001"), 1, datetime.now(UTC)
        )
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="m", messages=hi, max_tokens=10)
    assert err.value.code == "insufficient_quota"
    with served.rig.engine.connect() as conn:  # the parked job was not left behind
        assert conn.execute(select(Job.state)).scalars().all() == ["cancelled"]
    assert served.rig.sim.stats()["total_requests"] == 0


def test_results_format_openai_matches_the_output_file(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    served.rig.start(concurrency=4)
    client = served.client()
    f = client.files.create(
        file=write_lines(tmp_path / "in.jsonl", batch_lines(4)).open("rb"), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_status(client, batch.id, {"completed"}, on_timeout=served.rig.logs)
    served_lines = [
        json.loads(x) for x in client.files.content(done.output_file_id).text.split("\n") if x
    ]
    with served.rig.engine.connect() as conn:
        ledger_batch = conn.scalar(select(ApiBatch.batch_id).where(ApiBatch.id == batch.id))

    out = tmp_path / "results.jsonl"
    result = CliRunner().invoke(
        app,
        ["results", str(ledger_batch), "--format", "openai", "-o", str(out)],
        env={"LLMQ_DATABASE_URL": served.rig.database_url},
    )
    assert result.exit_code == 0, result.output
    cli_lines = [json.loads(x) for x in out.read_text().splitlines()]

    def strip(line):  # type: ignore[no-untyped-def]
        line["response"]["body"].pop("created")
        return line

    assert [strip(x) for x in cli_lines] == [strip(x) for x in served_lines]
    assert [x["custom_id"] for x in cli_lines] == [f"req-{i}" for i in range(4)]


def test_the_cookbook_script_runs_unchanged(served) -> None:  # type: ignore[no-untyped-def]
    served.rig.start(concurrency=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"OPENAI_BASE_URL": served.url, "OPENAI_API_KEY": served.key("cookbook")}
    run = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", "openai_batch.py"), "m"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr + served.rig.logs()
    out = run.stdout.splitlines()
    assert out[0].startswith("created batch_")
    assert sorted(x.split(" -> ")[0] for x in out if " -> " in x) == [
        "ticket-0",
        "ticket-1",
        "ticket-2",
    ]
    assert all(x.split(" -> ")[1].startswith("sim:") for x in out if " -> " in x)
