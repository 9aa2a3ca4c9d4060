"""A running llmq for one chaos scenario: config, worker subprocesses, a beat subprocess (the real
sweeper), a producer client, and the ledger checks every scenario ends with.

Timeouts are short so faults heal in seconds: a 10 s lease for claims no heartbeat renews (the
workers' own claims take the default heartbeat lease, 3 beats of 5 s), a sweep every second, a queued
job's message counted lost after 3 s, a 15 s visibility timeout, 1 s provider timeouts.
Every wait is bounded; a scenario that stalls fails with the ledger's state and the logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from producer.client import Client
from tests.helpers.llm_config import config_dict, load_test_config, model
from tests.helpers.worker import WorkerProcess, worker_env

MODEL = "chaos"
LEASE_S = 10
TIMINGS = {
    "LLMQ_LEASE_S": str(LEASE_S),
    "LLMQ_SWEEP_INTERVAL_S": "1",
    "LLMQ_REQUEUE_AFTER_S": "3",
    "LLMQ_VISIBILITY_TIMEOUT_S": "15",
}
PROVIDER_TIMEOUT_S = 1.0
PRICES = {"input_cost_per_mtok": "1.00", "output_cost_per_mtok": "2.00"}


@dataclass(frozen=True)
class Services:
    redis_url: str
    pg_url: str
    sim: Any  # simulator.server.RunningSimulator
    flush_redis: Callable[[], None]  # FLUSHALL on a private server, else FLUSHDB
    restart_postgres: Callable[[], str]  # returns how it was done


def write_input(path: Path, n: int, prefix: str = "job") -> Path:
    """`n` native JSONL lines with distinct prompts (no cache hits possible)."""
    with path.open("w") as f:
        for i in range(n):
            line = {"custom_id": f"{prefix}-{i}", "prompt": f"Chaos {prefix} {i}: one line."}
            f.write(json.dumps({**line, "max_tokens": 24}) + "\n")
    return path


class Stack:
    """One scenario's processes; `close()` stops every one of them by pid."""

    def __init__(
        self,
        services: Services,
        workdir: Path,
        *,
        concurrency: int,
        routing: dict[str, Any] | None = None,
        **env: str,
    ) -> None:
        self.services = services
        self.workdir = workdir
        self.concurrency = concurrency
        models = [model(MODEL, p, **PRICES) for p in ("openai", "anthropic")]
        data = config_dict(services.sim.url, models, routing=routing)
        for provider in data["providers"].values():
            provider["timeout_s"] = PROVIDER_TIMEOUT_S
        self.config_path = workdir / "llm_config.yaml"
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.config = load_test_config(self.config_path)
        backlog = {
            "LLMQ_REQUEUE_BACKLOG": str(4 * concurrency),
            "LLMQ_CONCURRENCY": str(concurrency),
        }
        self.env = worker_env(
            services.pg_url, services.redis_url, self.config_path, **TIMINGS, **backlog, **env
        )
        self.workers: list[WorkerProcess] = []
        self.beat_proc: subprocess.Popen[bytes] | None = None
        self.beat_log = workdir / "beat.log"
        self.client = Client(services.pg_url, services.redis_url, self.config, env=self.env)
        self.engine: Engine = create_engine(services.pg_url, pool_pre_ping=True, pool_size=2)
        self._starts = 0

    # ---- processes ---------------------------------------------------------------------

    def start_workers(self, count: int) -> list[WorkerProcess]:
        new = [self._worker() for _ in range(count)]
        for w in new:
            w.launch()
        for w in new:
            w.wait_ready(90)
        return new

    def _worker(self) -> WorkerProcess:
        self._starts += 1
        w = WorkerProcess(
            self.env,
            self.concurrency,
            f"w{self._starts}",
            command="llmq",
            queues="llmq,llmq.control",  # jobs, and the sweeps beat sends
            log_dir=self.workdir,
        )
        self.workers.append(w)
        return w

    def kill_and_restart(self, victim: WorkerProcess) -> WorkerProcess:
        """SIGKILL `victim`'s process group (a crash), then start a replacement."""
        victim.kill()
        return self.start_workers(1)[0]

    def start_beat(self) -> None:
        """`llmq beat` (the real scheduler) sending `llmq.sweep` every second."""
        argv = [sys.executable, "-m", "llmq.cli", "beat", "-l", "INFO"]
        argv += ["--schedule-file", str(self.workdir / "beat-schedule")]
        with open(self.beat_log, "wb") as out:
            self.beat_proc = subprocess.Popen(
                argv,
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while "beat: Starting" not in self.beat_log.read_text(errors="replace"):
            if self.beat_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"beat did not start:\n{self.beat_log.read_text()}")
            time.sleep(0.1)

    def close(self) -> None:
        for w in self.workers:
            w.kill()
        if self.beat_proc is not None and self.beat_proc.poll() is None:
            os.killpg(self.beat_proc.pid, signal.SIGKILL)
            self.beat_proc.wait(timeout=10)
        self.client.close()
        self.engine.dispose()

    def logs(self, tail: int = 4000) -> str:
        parts = [f"--- {w.name} ---\n{w.logs()[-tail:]}" for w in self.workers]
        if self.beat_log.exists():
            parts.append(f"--- beat ---\n{self.beat_log.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    # ---- the batch ---------------------------------------------------------------------

    def submit(self, n: int, prefix: str = "job") -> uuid.UUID:
        path = write_input(self.workdir / f"{prefix}.jsonl", n, prefix)
        return self.client.submit(path, name=f"chaos-{prefix}", model=MODEL, use_cache=False)

    def states(self, batch_id: uuid.UUID) -> dict[str, int] | None:
        """Job counts by state; None while the database is unreachable (a restart)."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT state, count(*) FROM jobs WHERE batch_id = :b GROUP BY state"),
                    {"b": batch_id},
                )
                return {state: int(n) for state, n in rows}
        except DBAPIError:
            return None

    def done(self, batch_id: uuid.UUID) -> int:
        counts = self.states(batch_id) or {}
        return sum(counts.get(s, 0) for s in ("succeeded", "failed", "cancelled"))

    def wait_for(self, batch_id: uuid.UUID, done_at_least: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.done(batch_id) < done_at_least:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"batch {batch_id} stuck at {self.states(batch_id)} "
                    f"(waited {timeout_s}s for {done_at_least} done)\n{self.logs()}"
                )
            time.sleep(0.05)

    def wait_settled(self, batch_id: uuid.UUID, total: int, timeout_s: float) -> float:
        """Wait until every job is terminal and the sweeper marked the batch done."""
        start = time.monotonic()
        self.wait_for(batch_id, total, timeout_s)
        while self.batch_state(batch_id) != "done":
            if time.monotonic() - start > timeout_s:
                raise AssertionError(f"batch {batch_id} never marked done\n{self.logs()}")
            time.sleep(0.1)
        return time.monotonic() - start

    def batch_state(self, batch_id: uuid.UUID) -> str | None:
        try:
            with self.engine.connect() as conn:
                return conn.execute(
                    text("SELECT state FROM batches WHERE id = :b"), {"b": batch_id}
                ).scalar()
        except DBAPIError:
            return None
