"""How long a SIGKILLed worker's jobs take to run again, read from the ledger.

`pick_victim` / `held_jobs` snapshot, just before the kill, the running jobs whose lease the victim's
heartbeat renews (`jobs.worker_id` = the victim's `workers` row, found by its pid), with their
attempt counters. `seconds_until_rerun` then waits until every one of them was claimed again
(its counter moved) or is finished, and returns the seconds since the kill.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from sqlalchemy import Engine, text

from tests.helpers.worker import WorkerProcess

_HELD = """
SELECT j.id, j.attempts FROM jobs j JOIN workers w ON w.id = j.worker_id
WHERE w.pid = :pid AND j.state = 'running'
"""
_NOW = """
SELECT id, attempts, state FROM jobs WHERE id = ANY(:ids)
"""
_FINISHED = ("succeeded", "failed", "cancelled")


def held_jobs(engine: Engine, pid: int | None) -> dict[uuid.UUID, int]:
    """{job id: attempt counter} of the running jobs worker process `pid` holds now."""
    with engine.connect() as conn:
        return {job_id: attempts for job_id, attempts in conn.execute(text(_HELD), {"pid": pid})}


def pick_victim(
    engine: Engine, alive: Sequence[WorkerProcess], prefer: int, timeout_s: float = 30.0
) -> tuple[WorkerProcess, dict[uuid.UUID, int]]:
    """A worker to kill that holds running jobs now (`alive[prefer]` first), with those jobs.

    A worker can sit idle for a while (the broker's messages are with the other one, or with
    a worker killed before); waiting (bounded) for a busy one makes every kill cut calls off.
    On timeout: `alive[prefer]` and no jobs.
    """
    order = [alive[prefer % len(alive)], *[w for w in alive if w is not alive[prefer % len(alive)]]]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in order:
            held = held_jobs(engine, worker.pid)
            if held:
                return worker, held
        time.sleep(0.05)
    return order[0], {}


def seconds_until_rerun(
    engine: Engine, held: dict[uuid.UUID, int], since: float, timeout_s: float
) -> float:
    """Seconds from `since` (monotonic) until every held job ran again or finished."""
    left = dict(held)
    while left:
        with engine.connect() as conn:
            rows = conn.execute(text(_NOW), {"ids": list(left)}).all()
        for job_id, attempts, state in rows:
            if attempts > left[job_id] or state in _FINISHED:
                del left[job_id]
        if not left:
            break
        if time.monotonic() - since > timeout_s:
            raise AssertionError(f"{len(left)} killed worker's jobs not re-run in {timeout_s}s")
        time.sleep(0.1)
    return time.monotonic() - since
