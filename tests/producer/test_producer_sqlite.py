"""The embedded mode's SQLite ledger takes the same submit, status and results path, with an
in-memory broker."""

from __future__ import annotations

import json
from pathlib import Path

from kombu import Connection
from producer_testlib import MODELS

from core.ledger.migrate import upgrade
from core.names import JOB_QUEUE
from producer.client import Client
from schemas.config import LLMConfig


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

    with Connection("memory://") as conn, conn.SimpleQueue(JOB_QUEUE) as queue:
        sent: list[str] = []  # the in-process broker got every id, in chunk messages
        while len(queue):
            message = queue.get(timeout=1)
            sent += message.payload[0][0]
            message.ack()
    assert len(sent) == len(set(sent)) == 7
    assert (result.jobs, result.enqueued) == (7, 7)
    assert status.counts["queued"] == 7 and status.to_json()["cost_usd"] == "0.00000000"
    assert [line["custom_id"] for line in lines] == [f"c{i}" for i in range(7)]
