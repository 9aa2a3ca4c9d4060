"""SIGKILL `llmq submit` during a 100,000-line submit: once while it writes the jobs, once
after its commit while it publishes the ids. Either the whole batch exists or none of it does;
a stored batch's unsent ids are the sweeper's to send (the Redis-loss scenario shows that)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine, text

from core.publish import redis_queue_keys
from tests.chaos.checks import Figures
from tests.chaos.stack import MODEL, Services, Stack, write_input

pytestmark = pytest.mark.chaos

LINES = 100_000
_COPYING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND query ILIKE 'COPY jobs%'
"""
_BATCHES = "SELECT count(*), coalesce(sum(total_jobs), 0) FROM batches"
_JOBS = "SELECT count(*) FROM jobs"


def _poll(check: Callable[[], bool], proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """True once `check()` holds; False if the submit exited first or time ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if check():
            return True
        time.sleep(0.01)
    return False


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar() or 0)


def _settle(engine: Engine) -> tuple[int, int, int]:
    """(batches, their total_jobs, jobs) once the killed client's COPY backend is gone."""
    deadline = time.monotonic() + 30
    while _count(engine, _COPYING) and time.monotonic() < deadline:
        time.sleep(0.05)
    with engine.connect() as conn:
        batches, total = conn.execute(text(_BATCHES)).one()
        jobs = conn.execute(text(_JOBS)).scalar()
    return int(batches), int(total), int(jobs or 0)


def _kill_submit(stack: Stack, path: Path, when: str, ready: Callable[[], bool]) -> str:
    """Run `llmq submit`, SIGKILL it as soon as `ready()` holds; returns the phase hit."""
    argv = [sys.executable, "-m", "llmq.cli", "submit", str(path), "--model", MODEL]
    proc = subprocess.Popen(
        argv,
        env=stack.env,
        cwd=stack.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        phase = when if _poll(ready, proc, 180) else "after exit"
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    return phase


def _wipe(engine: Engine, services: Services) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE attempts, jobs, batches CASCADE"))
    services.flush_redis()


def test_killed_submit(services: Services, tmp_path: Path, figures: Figures) -> None:
    stack = Stack(services, tmp_path, concurrency=1)  # no workers: only the producer runs
    engine = create_engine(services.pg_url)
    broker = redis.Redis.from_url(services.redis_url)
    try:
        started = time.monotonic()
        path = write_input(tmp_path / "big.jsonl", LINES, "big")
        runs = []
        moments = {
            "insert": lambda: _count(engine, _COPYING) > 0,  # COPY of the jobs running
            "enqueue": lambda: _queued(broker) > 0,  # committed, ids being published
        }
        for when, ready in moments.items():
            phase = _kill_submit(stack, path, when, ready)
            batches, total, jobs = _settle(engine)
            runs.append(
                {
                    "killed_during": phase,
                    "batches": batches,
                    "jobs": jobs,
                    "messages_sent": _queued(broker),
                }
            )
            assert batches in (0, 1), runs
            assert jobs == total == (LINES if batches else 0), runs  # all or nothing
            _wipe(engine, services)
        got = {
            "jobs": LINES,
            "kills": len(runs),
            "lost": sum(LINES - r["jobs"] for r in runs if r["batches"]),
            "duplicated": sum(max(0, r["batches"] - 1) for r in runs),
            "runs": runs,
            "seconds": round(time.monotonic() - started, 1),
        }
        figures.record("killed-submit", got)
        assert [r["killed_during"] for r in runs] == ["insert", "enqueue"], runs
    finally:
        broker.close()
        engine.dispose()
        stack.close()


def _queued(broker: redis.Redis) -> int:
    """Job messages on the broker, over every priority list (a big batch is bulk priority)."""
    return sum(int(broker.llen(key)) for key in redis_queue_keys())
