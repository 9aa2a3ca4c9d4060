"""The producer's boundaries: it never imports provider, routing or pipeline code, and the
embedded mode's SQLite ledger takes the same submit, status and results path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kombu import Connection
from producer_testlib import MODELS

from producer.client import Client
from producer.enqueue import QUEUE
from schemas.config import LLMConfig
from workers.ledger.migrate import upgrade

FORBIDDEN = ("workers.providers", "workers.pipeline", "workers.routing", "workers.runtime")


def test_producer_modules_import_no_provider_or_pipeline_code() -> None:
    code = (
        "import sys\n"
        "import producer.cli, producer.client, producer.commands.batch, producer.progress\n"
        "import producer.enqueue, producer.jsonl, producer.submit\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))\n"
        "print(bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_sqlite_ledger_with_an_in_memory_broker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"custom_id": f"c{i}", "prompt": f"p{i}"}) + "\n" for i in range(7))
    )
    cfg = LLMConfig.model_validate({"models": MODELS})
    with Client(url, "memory://", cfg) as client:
        result = client.submit_detailed(source, use_cache=False)
        status = client.get_batch(result.batch_id)
        lines = list(client.iter_results(result.batch_id, chunk=3))
        assert client.cancel(result.batch_id).cancelled == 7

    with Connection("memory://") as conn, conn.SimpleQueue(QUEUE) as queue:
        assert len(queue) == 7  # the in-process broker got every id
        queue.clear()
    assert (result.jobs, result.enqueued) == (7, 7)
    assert status.counts["queued"] == 7 and status.to_json()["cost_usd"] == "0.00000000"
    assert [line["custom_id"] for line in lines] == [f"c{i}" for i in range(7)]
