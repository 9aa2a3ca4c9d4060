"""End to end (issue 3): the producer submits a JSONL file, a real Celery worker subprocess
processes it against the simulator, and the ledger agrees with what the simulator served."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.jobs import attempt_tokens, wait_settled
from helpers.llm_config import load_test_config, model

from producer.client import Client

N_JOBS = 200


def write_jsonl(path: Path, n: int) -> Path:
    lines = [
        {"custom_id": f"line-{i:03d}", "prompt": f"Summarise item number {i} in one sentence."}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_200_jobs_submitted_processed_and_counted_exactly(rig, sim) -> None:  # type: ignore[no-untyped-def]
    config = rig.configure(
        [
            model(
                "m",
                "openai",
                is_default=True,
                input_cost_per_mtok="0.15",
                output_cost_per_mtok="0.6",
            )
        ]
    )
    rig.start(concurrency=8)
    source = write_jsonl(rig.tmp_path / "batch.jsonl", N_JOBS)

    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        batch_id = client.submit(source, name="e2e")
        counts = wait_settled(rig.engine, batch_id, timeout_s=120, on_timeout=rig.logs)
        results = list(client.iter_results(batch_id))
        status = client.get_batch(batch_id)

    assert counts == {"succeeded": N_JOBS}
    assert [r["custom_id"] for r in results] == [f"line-{i:03d}" for i in range(N_JOBS)]
    assert all(r["status"] == "succeeded" and r["attempts"] == 1 for r in results)
    assert all(r["response"]["text"].startswith("sim:") for r in results)
    served = sim.stats()["providers"]["openai"]["models"]["m"]
    assert served["served"] == N_JOBS == sim.stats()["total_requests"]
    assert attempt_tokens(rig.engine, batch_id) == (
        served["prompt_tokens"],
        served["completion_tokens"],
    )
    assert (status.prompt_tokens, status.completion_tokens) == (
        served["prompt_tokens"],
        served["completion_tokens"],
    )
    assert status.cost_usd > 0


def test_llmq_worker_command_runs_the_same_worker(rig, sim) -> None:  # type: ignore[no-untyped-def]
    config = rig.configure([model("m", "anthropic", is_default=True)])
    [worker] = rig.start(concurrency=2, command="llmq")
    source = write_jsonl(rig.tmp_path / "small.jsonl", 5)

    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        batch_id = client.submit(source)
        counts = wait_settled(rig.engine, batch_id, timeout_s=60, on_timeout=rig.logs)

    assert counts == {"succeeded": 5}
    assert "llmq.process_job" in worker.logs()  # the task is registered under its name
