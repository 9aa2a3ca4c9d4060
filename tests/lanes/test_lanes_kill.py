"""The poller SIGKILLed while it applies a provider batch's results (issue 18): nothing is
lost and nothing counted twice; the next poll applies exactly the items still waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.ledger.models import ProviderBatchItem
from lanes.conftest import Lanes, models_for
from workers.lanes.flush import flush_once
from workers.lanes.poll import poll_once

REPO = Path(__file__).resolve().parents[2]
N = 600


def _done(lanes: Lanes) -> int:
    with Session(lanes.engine) as s:
        q = (
            select(func.count())
            .select_from(ProviderBatchItem)
            .where(ProviderBatchItem.state == "done")
        )
        return int(s.scalar(q) or 0)


def test_poller_sigkilled_midway_loses_nothing_and_counts_nothing_twice(lanes: Lanes):  # type: ignore[no-untyped-def]
    rt = lanes.configure(models_for("openai"))
    ids = lanes.submit(N)
    assert set(lanes.run(ids)) == {"batched"}
    assert flush_once(rt, datetime.now(UTC), force=True).items == N
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("poll_proc.py")), lanes.database_url, str(lanes.config_path)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while _done(lanes) < 20:
            assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the poller applied nothing"
            time.sleep(0.01)
        proc.send_signal(signal.SIGSTOP)  # frozen mid-apply, then killed: a crash
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # A COMMIT the poller sent just before the signal still completes in its server
        # backend: count what was applied only once that backend is gone.
        _wait_backends_gone(lanes, before=time.monotonic() + 10)
        at_kill = _done(lanes)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 20 <= at_kill < N, at_kill  # really midway
    assert sum(s == "succeeded" for s in lanes.states(ids).values()) >= at_kill - 1
    polled = poll_once(rt, datetime.now(UTC))  # the next poll (beat's, after the crash)
    assert polled.applied.get("succeeded", 0) + polled.applied.get("stale", 0) == N - at_kill
    assert set(lanes.states(ids).values()) == {"succeeded"}
    rows = lanes.attempts(ids)
    assert len(rows) == N and {a.outcome for a in rows} == {"succeeded"}
    for w in lanes.windows():
        assert w.reserved_usd == 0 and w.reserved_tokens == 0
    day = [w for w in lanes.windows() if w.period == "day"]
    assert sum(w.spent_usd for w in day) == lanes.ledger_cost("batch") == lanes.sim_cost("batch")


def _wait_backends_gone(lanes: Lanes, before: float) -> None:
    """Until no other session of the test database is inside a transaction or a statement."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
    )
    while time.monotonic() < before:
        with lanes.engine.connect() as conn:
            if not conn.execute(query).scalar_one():
                return
        time.sleep(0.05)
