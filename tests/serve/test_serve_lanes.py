"""`llmq serve` and batch lanes (issue 18): a batch created with `completion_window: "24h"`
gives its jobs that deadline, so they go through the provider's batch API at the batch price;
the caller sees an ordinary completed OpenAI batch."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ledger.models import Attempt, Job
from schemas.settings import Settings
from workers.lanes.flush import flush_once
from workers.lanes.poll import poll_once
from workers.runtime import build_runtime

from .conftest import MODELS, batch_lines, wait_status, write_lines

LANES = {"flush_after_s": 0, "poll_s": 1, "window_s": 60, "margin_s": 60}


def test_a_24h_completion_window_uses_the_batch_lane(rig, make_serve, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from helpers.llm_config import load_test_config

    rig.configure(MODELS, batch_lane=LANES)
    served = make_serve()
    rig.start(concurrency=4)
    settings = Settings(database_url=rig.database_url, broker_url=rig.redis_url, embedded=True)
    rt = build_runtime(settings, load_test_config(rig.config_path), concurrency=2)
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            flush_once(rt, datetime.now(UTC))
            poll_once(rt, datetime.now(UTC))
            time.sleep(0.3)

    ticker = threading.Thread(target=beat, daemon=True)
    ticker.start()
    try:
        client = served.client("team-a")
        path = write_lines(tmp_path / "in.jsonl", batch_lines(5))
        uploaded = client.files.create(file=path.open("rb"), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = wait_status(client, batch.id, {"completed", "failed"}, on_timeout=rig.logs)
    finally:
        stop.set()
        ticker.join(10)
        rt.close()
    assert done.status == "completed" and done.request_counts.completed == 5
    with Session(rig.engine) as s:
        deadlines = s.scalars(select(Job.deadline)).all()
        lanes = s.scalars(select(Attempt.lane)).all()
    assert len(deadlines) == 5 and all(d is not None for d in deadlines)
    assert lanes == ["batch"] * 5
    billed = {r["lane"] for r in rig.sim.billing()}
    assert billed == {"batch"}  # the provider's batch API served them, at its batch price
