"""Fixtures for the batch-lane tests (issue 18): the simulator with prices, a runtime built on
it, and helpers that submit jobs with a deadline and drive the flusher and poller.

`Lanes.drive()` is what beat does (flush, poll) plus what the workers do with the jobs the
poller sends back to routing (run them), in this process, until every job is terminal.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers.llm_config import load_test_config, model, write_llm_config
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ledger import batch_submit_repo
from core.ledger.batch_submit_repo import NewBatch
from core.ledger.db import session_scope
from core.ledger.models import Attempt, BudgetWindow, Job
from schemas.job import TERMINAL_STATES, ChatMessage, JobSpec
from schemas.settings import Settings
from simulator.server import RunningSimulator, start_in_thread
from tests.conftest import REDIS_TEST_URL
from workers.lanes.flush import flush_once
from workers.lanes.poll import poll_once
from workers.pipeline import run_job
from workers.runtime import Runtime, build_runtime

PRICES = {"input_cost_per_mtok": "1", "output_cost_per_mtok": "2"}
SIM_PRICES = {"*": ("1", "2")}
# the lane rule sized for tests: a batch lane while more than 120 s are left
LANES = {"flush_after_s": 0, "poll_s": 1, "window_s": 60, "margin_s": 60}
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "google": "gemini-2.5-flash",
}


@pytest.fixture(scope="session")
def sim_session() -> Iterator[RunningSimulator]:
    server = start_in_thread()
    yield server
    server.stop()


@pytest.fixture()
def sim(sim_session: RunningSimulator) -> RunningSimulator:
    sim_session.reset(behaviour=True)
    sim_session.set_prices(dict(SIM_PRICES))
    return sim_session


def models_for(provider: str, name: str = "m") -> list[dict[str, Any]]:
    return [model(name, provider, model_id=MODELS[provider], is_default=True, **PRICES)]


@dataclass
class Lanes:
    sim: RunningSimulator
    database_url: str
    tmp_path: Path
    engine: Any
    runtimes: list[Runtime] = field(default_factory=list)
    rt: Runtime | None = None

    def configure(
        self,
        models: Sequence[Mapping[str, Any]],
        lanes: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> Runtime:
        path = write_llm_config(
            self.tmp_path / f"llm_config_{len(self.runtimes)}.yaml",
            self.sim.url,
            models,
            batch_lane={**LANES, **(lanes or {})},
            **extra,
        )
        self.config_path = path
        settings = Settings(
            database_url=self.database_url, broker_url=REDIS_TEST_URL, embedded=True
        )
        self.rt = build_runtime(settings, load_test_config(path), concurrency=4)
        self.runtimes.append(self.rt)
        return self.rt

    def submit(
        self, n: int, deadline_s: float | None = 86400.0, tenant: str = "t"
    ) -> list[uuid.UUID]:
        assert self.rt is not None
        now = datetime.now(UTC)
        due = now + timedelta(seconds=deadline_s) if deadline_s is not None else None
        specs = [
            JobSpec(custom_id=f"j{i}", model="m", max_tokens=40,
                    messages=[ChatMessage(role="user", content=f"question number {i}")])
            for i in range(n)
        ]  # fmt: skip
        with session_scope(self.rt.sessions) as s:
            _, ids = batch_submit_repo.insert_batch_with_jobs(
                s, NewBatch(tenant=tenant, deadline=due), specs, now
            )
        return ids

    def run(self, ids: Sequence[uuid.UUID]) -> list[str]:
        assert self.rt is not None
        return [run_job(i, self.rt, datetime.now(UTC)).status for i in ids]

    def step(self, *, force_flush: bool = True) -> tuple[Any, Any]:
        assert self.rt is not None
        now = datetime.now(UTC)
        flushed = flush_once(self.rt, now, force=force_flush)
        polled = poll_once(self.rt, datetime.now(UTC), force=True)
        return flushed, polled

    def drive(self, ids: Sequence[uuid.UUID], rounds: int = 20) -> None:
        """Flush, poll, run what came back, until every job is terminal."""
        for _ in range(rounds):
            self.run(self.runnable(ids))
            self.step()
            if all(s in {t.value for t in TERMINAL_STATES} for s in self.states(ids).values()):
                return
        raise AssertionError(f"jobs not finished: {self.states(ids)}")

    def runnable(self, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        return [i for i, st in self.states(ids).items() if st == "queued"]

    def states(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        with Session(self.engine) as s:
            rows = s.execute(select(Job.id, Job.state).where(Job.id.in_(list(ids))))
            return {r.id: r.state for r in rows}

    def attempts(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        with Session(self.engine) as s:
            return list(s.execute(select(Attempt).where(Attempt.job_id.in_(list(ids)))).scalars())

    def windows(self) -> list[BudgetWindow]:
        with Session(self.engine) as s:
            return list(s.execute(select(BudgetWindow)).scalars())

    def ledger_cost(self, lane: str | None) -> Decimal:
        with Session(self.engine) as s:
            cond = Attempt.lane.is_(None) if lane is None else Attempt.lane == lane
            return Decimal(
                s.scalar(select(func.coalesce(func.sum(Attempt.cost_usd), 0)).where(cond))
            )

    def sim_cost(self, lane: str) -> Decimal:
        return sum((Decimal(r["usd"]) for r in self.sim.billing(lane)), Decimal(0))


@pytest.fixture()
def lanes(sim: RunningSimulator, clean_db: str, tmp_path: Path, engine: Any) -> Iterator[Lanes]:
    rig = Lanes(sim, clean_db, tmp_path, engine)
    yield rig
    for rt in rig.runtimes:
        rt.close()
