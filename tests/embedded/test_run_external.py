"""`llmq run --external`: the same command on the production shape (Postgres, Redis and a
separate worker process), the one case where `run` is not embedded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import redis

from simulator.server import start_in_thread
from tests.conftest import REDIS_TEST_URL_2
from tests.embedded.clean_env import LLMQ, read_jsonl, write_jsonl
from tests.helpers.llm_config import model, write_llm_config
from tests.helpers.worker import WorkerProcess, worker_env


def test_run_external_submits_to_the_servers_and_waits_for_their_workers(
    clean_db: str, redis_url: str, tmp_path: Path
) -> None:
    sim = start_in_thread()
    try:
        priced = {"input_cost_per_mtok": 1, "output_cost_per_mtok": 2}
        config = write_llm_config(
            tmp_path / "llm_config.yaml", sim.url, [model("m", "openai", **priced)]
        )
        env = worker_env(clean_db, _private_db(redis_url), config)
        ids = write_jsonl(tmp_path / "in.jsonl", 40)
        with WorkerProcess(env, concurrency=4, queues="llmq,llmq.control", log_dir=tmp_path):
            proc = subprocess.run(
                [LLMQ, "run", "in.jsonl", "--external", "--json"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads(proc.stdout)
        assert [r["custom_id"] for r in read_jsonl(tmp_path / "in.jsonl.results.jsonl")] == ids
        assert summary["ledger"].startswith("postgresql")
        assert summary["simulator"] is None  # the worker, not this command, reached the provider
        assert sim.stats()["total_served"] == len(ids)
        assert not (tmp_path / ".llmq" / "ledger.db").exists()
    finally:
        sim.stop()


def _private_db(redis_url: str) -> str:
    """This test worker's second Redis database (flushed): the first may still hold another
    suite's messages. Never a fixed number: under pytest-xdist a fixed db belongs to another
    test worker, whose messages our worker would take and drop (a CI failure once)."""
    url = REDIS_TEST_URL_2
    assert url != redis_url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url
