"""Real Celery worker subprocesses for integration and chaos tests.

`WorkerProcess` starts `celery -A workers worker -P threads -c N --without-mingle
--without-gossip -Q llmq` (or `llmq worker ...`) with a given environment, in its own process
group, waits until the worker says it is ready, and can SIGKILL it (a crash: nothing is
acknowledged or cleaned up) or stop it (SIGTERM: warm shutdown). Output goes to a log file,
read back with `logs()` when a test fails.

`worker_env` builds the environment: ledger, broker and config, with every real provider key
and .env removed, and a scratch working directory so no ./llm_config.yaml leaks in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_MARK = " ready."  # celery logs "celery@host ready." once it consumes
PROVIDER_KEY_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "HUGGINGFACE_API_KEY",
    "HF_TOKEN",
    "COHERE_API_KEY",
    "CO_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "LOCAL_LLM_API_KEY",
)


def worker_env(
    database_url: str,
    redis_url: str,
    config_path: str | Path,
    **extra: str,
) -> dict[str, str]:
    """Environment for a worker: LLMQ_* wiring plus `extra`, without real provider keys."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEY_VARS}
    env.update(
        LLMQ_DATABASE_URL=database_url,
        LLMQ_BROKER_URL=redis_url,
        LLMQ_REDIS_URL=redis_url,
        LLMQ_CONFIG=str(config_path),
        LLMQ_DOTENV=str(Path(config_path).parent / "no-such.env"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class WorkerProcess:
    """One worker process (its own process group), started and stopped by the test."""

    def __init__(
        self,
        env: Mapping[str, str],
        concurrency: int = 4,
        name: str = "w1",
        *,
        command: str = "celery",
        loglevel: str = "INFO",
        queues: str = "llmq",
        extra_args: Sequence[str] = (),
        log_dir: Path | None = None,
    ) -> None:
        """
        Args:
            env: the full environment (see `worker_env`).
            concurrency: threads, i.e. provider calls in flight.
            name: node name prefix (`name@%h`), distinct per worker of one test.
            command: "celery" (`python -m celery -A workers worker ...`) or "llmq"
                (`python -m llmq.cli worker ...`, which execs the same celery command).
            loglevel: must be INFO or lower: readiness is read from the log.
            queues: what to consume; "llmq,llmq.control" also runs periodic tasks (sweep).
            extra_args: more worker options.
            log_dir: where the log file goes (default: a temp dir).
        """
        self.env = dict(env)
        self.concurrency = concurrency
        self.name = name
        self.command = command
        self.loglevel = loglevel
        self.queues = queues
        self.extra_args = list(extra_args)
        self.log_path = Path(log_dir or tempfile.mkdtemp(prefix="llmq-worker-")) / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        node = f"{self.name}@%h"
        if self.command == "llmq":
            head = [sys.executable, "-m", "llmq.cli", "worker"]
            opts = ["-c", str(self.concurrency), "-l", self.loglevel, "-n", node, "-Q", self.queues]
            return head + opts + self.extra_args
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "worker",
            "-P",
            "threads",
            "-c",
            str(self.concurrency),
            "--without-mingle",
            "--without-gossip",
            "-Q",
            self.queues,
            "-n",
            node,
            "-l",
            self.loglevel,
            *self.extra_args,
        ]

    def start(self, timeout_s: float = 60.0) -> WorkerProcess:
        """Start the process and wait until it consumes (or raise with its log)."""
        self.launch()
        self.wait_ready(timeout_s)
        return self

    def launch(self) -> WorkerProcess:
        """Start the process without waiting for it."""
        cwd = Path(self.env.get("LLMQ_CONFIG", self.log_path)).parent
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: kill() takes every child
            )
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if READY_MARK in self.logs():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker {self.name} exited ({self.proc.returncode}):\n{self.logs()}"
                )
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"worker {self.name} not ready in {timeout_s}s:\n{self.logs()}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, nothing acknowledged."""
        self._signal(signal.SIGKILL)
        self._wait(10.0)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (warm shutdown); SIGKILL if it has not exited within `timeout_s`."""
        self._signal(signal.SIGTERM)
        if not self._wait(timeout_s):
            self.kill()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # start_new_session: pgid == pid
        except ProcessLookupError:
            pass

    def _wait(self, timeout_s: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def __enter__(self) -> WorkerProcess:
        return self.start() if self.proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


def start_workers(
    env: Mapping[str, str], count: int, concurrency: int = 4, **kw: object
) -> list[WorkerProcess]:
    """Start `count` workers at once and wait until all are ready."""
    workers = [WorkerProcess(env, concurrency, f"w{i + 1}", **kw) for i in range(count)]  # type: ignore[arg-type]
    try:
        for w in workers:
            w.launch()
        for w in workers:
            w.wait_ready()
    except BaseException:
        for w in workers:
            w.kill()
        raise
    return workers
