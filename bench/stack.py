"""The services and processes of one bench run, started as in production and always cleaned up.

Owns: a throwaway Postgres database (created, migrated, dropped), a private Redis db (flushed
before and after), the simulator as its own process, `llmq worker` / `llmq beat` / `llmq submit`
subprocesses (each in its own process group, killed by group id) and the llm_config.yaml
they share. Must not: touch any other database or Redis db, or kill anything it did not start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from sqlalchemy import create_engine, text

from core.publish import redis_queue_keys

PG_ADMIN_URL = os.environ.get("LLMQ_BENCH_PG_ADMIN", "postgresql+psycopg://127.0.0.1/postgres")
REDIS_URL = os.environ.get("LLMQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
REPO_ROOT = Path(__file__).resolve().parents[1]
READY_MARK = " ready."  # celery logs "celery@host ready." once it consumes
MODEL = "m"  # the one model every scenario uses, served by the simulator's openai route
SIM_KEY = "sk-bench-not-a-real-key"
# Real keys and a developer's settings must not leak into a bench process.
DROPPED_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "COHERE_API_KEY", "GOOGLE_API_KEY")


@dataclass
class Proc:
    """A subprocess in its own process group, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the group (warm shutdown), SIGKILL it if still there after `timeout_s`."""
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def _signal(self, sig: signal.Signals) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)  # start_new_session: the group id is the pid
        except ProcessLookupError:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---- the stack -----------------------------------------------------------------------------


@dataclass
class Stack:
    """Everything one bench run starts; `close()` (or the context manager) removes it all."""

    workdir: Path
    loglevel: str = "INFO"
    db_name: str = field(default_factory=lambda: f"llmq_bench_{uuid.uuid4().hex[:8]}")
    procs: list[Proc] = field(default_factory=list)
    sim_url: str = ""
    sim: Proc | None = None
    _db_created: bool = False

    @property
    def database_url(self) -> str:
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.db_name

    @property
    def config_path(self) -> Path:
        return self.workdir / "llm_config.yaml"

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- services

    def open(self, latency_ms: float = 0.0) -> Stack:
        """Create and migrate the database, flush the Redis db, start the simulator."""
        from core.ledger.migrate import upgrade

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.flush_redis()
        self._admin(f'CREATE DATABASE "{self.db_name}"')
        self._db_created = True
        upgrade(self.database_url)
        self.start_simulator(latency_ms)
        self.write_config()
        return self

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()
        self.procs.clear()
        try:
            self.flush_redis()
        finally:
            if self._db_created:
                self._admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
                self._db_created = False

    def _admin(self, sql: str) -> None:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(sql))
        finally:
            admin.dispose()

    def flush_redis(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            client.flushdb()
        finally:
            client.close()

    def queue_length(self) -> int:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            return sum(int(client.llen(key)) for key in redis_queue_keys())
        finally:
            client.close()

    def sql(self, query: str, **params: Any) -> list[Any]:
        """One statement on the bench database, autocommitted (so VACUUM works too)."""
        engine = create_engine(self.database_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(query), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    # -- simulator

    def start_simulator(self, latency_ms: float) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "simulator", "--port", str(port)]
        self.sim = self.spawn("simulator", [*argv, "--latency-ms", str(latency_ms)])
        self.sim_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.sim_url + "/_sim/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not self.sim.alive():
                break
            time.sleep(0.1)
        raise RuntimeError(f"simulator did not start:\n{self.sim.logs()}")

    def sim_call(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, self.sim_url + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def configure_sim(self, **behaviour: Any) -> None:
        """Replace the openai provider's behaviour (others keep the simulator's defaults)."""
        self.sim_call("POST", "/_sim/reset", {"behaviour": True})
        self.sim_call("POST", "/_sim/config", {"provider": "openai", **behaviour})

    def sim_stats(self) -> dict[str, Any]:
        return self.sim_call("GET", "/_sim/stats")

    # -- llmq processes

    def write_config(self) -> None:
        config = {
            "default_provider": "openai",
            "providers": {"openai": {"api_base": self.sim_url + "/openai/v1", "api_key": SIM_KEY}},
            "models": [
                {
                    "name": MODEL,
                    "provider": "openai",
                    "is_default": True,
                    "max_tokens": 64,
                    "input_cost_per_mtok": "0.15",
                    "output_cost_per_mtok": "0.60",
                }
            ],
            # serve batches carry a deadline (issue 18); `lanes` turns batch lanes on itself
            "batch_lane": {"enabled": False},
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def env(self, **extra: str) -> dict[str, str]:
        env = base_env()
        env.update(
            LLMQ_DATABASE_URL=self.database_url,
            LLMQ_BROKER_URL=REDIS_URL,
            LLMQ_REDIS_URL=REDIS_URL,
            LLMQ_CONFIG=str(self.config_path),
            LLMQ_DOTENV=str(self.workdir / "no-such.env"),
            LLMQ_BEAT_SCHEDULE=str(self.workdir / "celerybeat-schedule"),
        )
        env.update(extra)
        return env

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Proc:
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "wb") as out:
            popen = subprocess.Popen(
                list(argv),
                env=env or base_env(),
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg takes every child
            )
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def llmq_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "llmq.cli", *args]

    def start_workers(self, count: int, concurrency: int, **env: str) -> list[Proc]:
        """`llmq worker -c N` processes (threads pool), waited on until each consumes."""
        started = []
        for i in range(count):
            argv = self.llmq_argv(
                "worker", "-c", str(concurrency), "-l", self.loglevel, "-n", f"bench{i}@%h"
            )
            started.append(self.spawn(f"worker{i}-{len(self.procs)}", argv, self.env(**env)))
        for proc in started:
            wait_for_log(proc, READY_MARK, 90)
        return started

    def start_beat(self) -> Proc:
        proc = self.spawn("beat", self.llmq_argv("beat", "-l", "INFO"), self.env())
        wait_for_log(proc, "beat: Starting", 60)
        return proc

    def stop(self, procs: Iterable[Proc]) -> None:
        for proc in list(procs):
            proc.kill()
            if proc in self.procs:
                self.procs.remove(proc)

    def abandon(self, procs: Iterable[Proc], *batch_ids: uuid.UUID) -> None:
        """End a scenario: kill its processes, cancel what its batches left, empty the queue."""
        from producer.client import Client

        self.stop(procs)
        with Client(self.database_url, REDIS_URL) as client:
            for batch_id in batch_ids:
                client.cancel(batch_id)
        self.flush_redis()

    def truncate(self) -> None:
        """Empty the ledger (the bench's own database) between scenarios that need it."""
        self.sql("TRUNCATE attempts, jobs, batches, budget_windows CASCADE")

    def postgres_backends(self) -> list[int]:
        """Pids of the Postgres backends connected to the bench database (not this process)."""
        rows = self.sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()",
            d=self.db_name,
        )
        return [int(r[0]) for r in rows]

    def submit(self, path: Path) -> tuple[uuid.UUID, float, dict[str, float]]:
        """`llmq submit FILE --json` as a subprocess: (batch id, wall seconds, phase seconds)."""
        argv = self.llmq_argv("submit", str(path), "--json")
        t0 = time.perf_counter()
        done = subprocess.run(
            argv, env=self.env(), cwd=self.workdir, capture_output=True, text=True, timeout=300
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"llmq submit failed ({done.returncode}):\n{done.stderr}")
        batch_id = uuid.UUID(json.loads(done.stdout.strip().splitlines()[-1])["batch_id"])
        return batch_id, wall, _phases(done.stderr)

    def wait_finished(self, batch_id: uuid.UUID, total: int, timeout_s: float) -> None:
        """Until every job of the batch is terminal (succeeded or failed)."""
        deadline = time.monotonic() + timeout_s
        query = (
            "SELECT count(*) FROM jobs WHERE batch_id = :b "
            "AND state IN ('succeeded', 'failed', 'cancelled')"
        )
        engine = create_engine(self.database_url)
        try:
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    if conn.execute(text(query), {"b": batch_id}).scalar_one() >= total:
                        return
                time.sleep(0.2)
        finally:
            engine.dispose()
        logs = "\n".join(p.logs()[-3000:] for p in self.procs if p.name.startswith("worker"))
        raise TimeoutError(f"batch {batch_id} not finished in {timeout_s}s\n{logs}")


def _phases(stderr: str) -> dict[str, float]:
    """Parse `N jobs queued: parse 1.23s, insert 2.34s, enqueue 0.56s` from llmq submit."""
    phases: dict[str, float] = {}
    for line in stderr.splitlines():
        if "parse " in line and "insert " in line:
            for part in line.split(":", 1)[1].split(","):
                name, _, value = part.strip().partition(" ")
                try:
                    phases[name + "_s"] = float(value.rstrip("s"))
                except ValueError:
                    continue
    return phases


def wait_for_log(proc: Proc, mark: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if mark in proc.logs():
            return
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.logs()}")
        time.sleep(0.05)
    raise TimeoutError(f"{proc.name} not ready in {timeout_s}s:\n{proc.logs()[-4000:]}")


def write_jsonl(path: Path, n: int, tag: str) -> Path:
    """`n` distinct native lines (~200-byte prompts), so nothing is served from a cache."""
    filler = "Summarise the following item in one sentence, plainly and without preamble: "
    with open(path, "w") as f:
        for i in range(n):
            prompt = f"{filler}item {tag}-{i}, a record of about one hundred and twenty characters."
            f.write(json.dumps({"custom_id": f"{tag}-{i}", "prompt": prompt}) + "\n")
    return path
