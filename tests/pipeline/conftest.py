"""Fixtures for the pipeline tests: the simulator, and runtimes built against it.

`make_runtime(models, ...)` writes an llm_config.yaml pointing at the simulator, loads it like a
worker does and builds a `Runtime` on the test database (in-memory health unless asked for
Redis). Runtimes are closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.llm_config import load_test_config, write_llm_config
from helpers.worker import WorkerProcess, start_workers, worker_env

from schemas.settings import Settings
from simulator.server import RunningSimulator, start_in_thread
from tests.conftest import REDIS_TEST_URL
from workers.runtime import Runtime, build_runtime

MakeRuntime = Callable[..., Runtime]


@pytest.fixture(scope="session")
def sim_session() -> Iterator[RunningSimulator]:
    server = start_in_thread()
    yield server
    server.stop()


@pytest.fixture()
def sim(sim_session: RunningSimulator) -> RunningSimulator:
    """The session's simulator with counters, log, windows and behaviours reset."""
    sim_session.reset(behaviour=True)
    return sim_session


@pytest.fixture()
def make_runtime(sim: RunningSimulator, clean_db: str, tmp_path: Path) -> Iterator[MakeRuntime]:
    built: list[Runtime] = []

    def make(
        models: Sequence[Mapping[str, Any]],
        *,
        redis_url: str | None = None,
        lease_s: float = 300.0,
        concurrency: int = 8,
        **config: Any,
    ) -> Runtime:
        path = write_llm_config(
            tmp_path / f"llm_config_{len(built)}.yaml", sim.url, models, **config
        )
        settings = Settings(
            database_url=clean_db,
            broker_url=redis_url or REDIS_TEST_URL,
            lease_s=lease_s,
            embedded=redis_url is None,  # no Redis given: in-memory health store
        )
        rt = build_runtime(settings, load_test_config(path), concurrency=concurrency)
        built.append(rt)
        return rt

    yield make
    for rt in built:
        rt.close()


@dataclass
class WorkerRig:
    """Config, environment and worker processes for one test; workers die at teardown."""

    sim: RunningSimulator
    database_url: str
    redis_url: str
    tmp_path: Path
    engine: Any
    env: dict[str, str] = field(default_factory=dict)
    config_path: Path | None = None
    started: list[WorkerProcess] = field(default_factory=list)

    def configure(self, models: Sequence[Mapping[str, Any]], **config: Any) -> Path:
        """Write the llm_config.yaml every worker of this test will load."""
        self.config_path = write_llm_config(
            self.tmp_path / "llm_config.yaml", self.sim.url, models, **config
        )
        self.env = worker_env(self.database_url, self.redis_url, self.config_path)
        return self.config_path

    def start(self, count: int = 1, concurrency: int = 4, **kw: Any) -> list[WorkerProcess]:
        assert self.config_path is not None, "configure() first"
        new = start_workers(self.env, count, concurrency, log_dir=self.tmp_path, **kw)
        self.started.extend(new)
        return new

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.logs()[-6000:]}" for w in self.started)


@pytest.fixture()
def rig(
    sim: RunningSimulator, clean_db: str, redis_url: str, engine: Any, tmp_path: Path
) -> Iterator[WorkerRig]:
    """Real worker subprocesses against the simulator, the test database and test Redis."""
    r = WorkerRig(sim, clean_db, redis_url, tmp_path, engine)
    yield r
    for w in r.started:
        w.kill()
