"""Fixtures for the nightly-run tests: the simulator, a config with a `nightly:` section whose
inbox and report folders live in the test's tmp dir, a ledger (Postgres, or SQLite for the
single-process mode), and real worker subprocesses when a test needs jobs processed.

`NightRig.context()` builds the `NightlyContext` the CLI and the Celery task build; `publish`
is either the producer's real enqueue (a worker processes the jobs) or, for tests that stop
before the wait, a recorder of the published ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.llm_config import load_test_config, model, write_llm_config
from helpers.worker import WorkerProcess, start_workers, worker_env
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.ledger.db import make_engine, make_sessionmaker
from core.publish import enqueue_job_ids
from schemas.config import LLMConfig
from simulator.server import RunningSimulator, start_in_thread
from tests.conftest import REDIS_TEST_URL
from workers.nightly.context import NightlyContext

PRICED = {"input_cost_per_mtok": "2", "output_cost_per_mtok": "8"}


@pytest.fixture(scope="session")
def sim_session() -> Iterator[RunningSimulator]:
    server = start_in_thread()
    yield server
    server.stop()


@pytest.fixture()
def sim(sim_session: RunningSimulator) -> RunningSimulator:
    sim_session.reset(behaviour=True)
    return sim_session


@dataclass
class NightRig:
    """One test's ledger, config, inbox and report folders, and workers."""

    sim: RunningSimulator
    database_url: str
    redis_url: str
    tmp_path: Path
    engine: Engine
    sessions: sessionmaker[Session]
    config_path: Path | None = None
    config: LLMConfig | None = None
    published: list[uuid.UUID] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def inbox(self) -> Path:
        return self.tmp_path / "inbox"

    @property
    def reports(self) -> Path:
        return self.tmp_path / "reports"

    def configure(
        self,
        *,
        budget_usd: str | None = None,
        retry_failed_max: int = 2,
        models: Sequence[Mapping[str, Any]] | None = None,
        time: str = "02:00",
        **extra: Any,
    ) -> LLMConfig:
        nightly: dict[str, Any] = {
            "time": time,
            "tenant": "nightly",
            "inbox": str(self.inbox),
            "report_dir": str(self.reports),
            "retry_failed_max": retry_failed_max,
        }
        if budget_usd is not None:
            nightly["budget_usd"] = budget_usd
        self.inbox.mkdir(exist_ok=True)
        chosen = models or [model("m", "openai", is_default=True, **PRICED)]
        self.config_path = write_llm_config(
            self.tmp_path / "llm_config.yaml", self.sim.url, chosen, nightly=nightly, **extra
        )
        self.config = load_test_config(self.config_path)
        return self.config

    def env(self) -> dict[str, str]:
        assert self.config_path is not None, "configure() first"
        return worker_env(self.database_url, self.redis_url, self.config_path)

    def start_workers(self, count: int = 1, concurrency: int = 4, **kw: Any) -> None:
        self.workers += start_workers(self.env(), count, concurrency, log_dir=self.tmp_path, **kw)

    def record(self, ids: Sequence[uuid.UUID]) -> None:
        self.published.extend(ids)

    def enqueue(self, ids: Sequence[uuid.UUID]) -> None:
        enqueue_job_ids(self.redis_url, list(ids))

    def context(self, *, processed: bool = True, **kw: Any) -> NightlyContext:
        """processed=True: ids go to the broker (start a worker); else they are recorded."""
        assert self.config is not None, "configure() first"
        publish = self.enqueue if processed else self.record
        return NightlyContext(self.sessions, self.engine, self.config, publish, poll_s=0.2, **kw)

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.logs()[-6000:]}" for w in self.workers)


def _rig(sim: RunningSimulator, url: str, redis_url: str, tmp_path: Path) -> Iterator[NightRig]:
    engine = make_engine(url, pool_size=4)
    rig = NightRig(sim, url, redis_url, tmp_path, engine, make_sessionmaker(engine))
    try:
        yield rig
    finally:
        for w in rig.workers:
            w.kill()
        engine.dispose()


@pytest.fixture()
def night(
    sim: RunningSimulator, clean_db: str, redis_url: str, tmp_path: Path
) -> Iterator[NightRig]:
    """Postgres ledger, test Redis, simulator; workers on demand."""
    yield from _rig(sim, clean_db, redis_url, tmp_path)


@pytest.fixture(params=["postgres", "sqlite"])
def ledger_night(
    request: pytest.FixtureRequest, sim: RunningSimulator, tmp_path: Path
) -> Iterator[NightRig]:
    """For runs that stop before the wait (no worker): Postgres, and SQLite (embedded mode)."""
    if request.param == "postgres":
        url = request.getfixturevalue("clean_db")
    else:
        from core.ledger.migrate import upgrade

        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        upgrade(url)
    yield from _rig(sim, url, REDIS_TEST_URL, tmp_path)
