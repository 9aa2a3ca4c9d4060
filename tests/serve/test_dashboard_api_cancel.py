"""Cancelling from the dashboard a batch created through `/v1/batches`: the API's batch object
follows (cancelling -> cancelled, the unrun lines in its error file), as with the API's cancel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ledger.models import ApiBatch

from .conftest import Served, batch_lines, wait_status, write_lines


def test_a_dashboard_cancel_ends_the_api_batch_cancelled(served: Served, tmp_path: Path) -> None:
    client = served.client("team-a")  # no worker runs: every line stays queued
    uploaded = client.files.create(
        file=write_lines(tmp_path / "in.jsonl", batch_lines(4)).open("rb"), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_status(client, batch.id, {"in_progress"})
    with Session(served.rig.engine) as s:
        ledger_id = s.scalar(select(ApiBatch.batch_id).where(ApiBatch.id == batch.id))

    root = served.url.removesuffix("/v1")
    login = httpx.post(root + "/login", data={"key": served.key("team-a")})
    cookies = {"llmq_session": login.cookies["llmq_session"]}
    page = httpx.get(f"{root}/batches/{ledger_id}", cookies=cookies)
    [csrf] = re.findall(r'name="csrf" value="([^"]+)"', page.text)[:1]
    done = httpx.post(f"{root}/batches/{ledger_id}/cancel", cookies=cookies, data={"csrf": csrf})
    assert done.status_code == 303 and "cancelled+4+jobs" in done.headers["location"]

    ended = wait_status(client, batch.id, {"cancelled"}, on_timeout=served.rig.logs)
    assert ended.cancelling_at and ended.cancelled_at
    assert (ended.request_counts.completed, ended.request_counts.failed) == (0, 4)
    errors = [json.loads(x) for x in client.files.content(ended.error_file_id).text.splitlines()]
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
