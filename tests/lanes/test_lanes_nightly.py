"""Done-when of issue 18: a 1,000-job nightly run on the simulator, with real worker processes,
the sweeper, the flusher and the poller (what beat sends, run here on a timer), and Redis
flushed in the middle. Every job succeeds exactly once, the ledger equals what the simulator
billed, and it costs at most 51% of the same run with `batch_lane.enabled: false`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers.llm_config import load_test_config, model, write_llm_config
from helpers.worker import start_workers, worker_env
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ledger.models import Attempt, BudgetWindow, Job, NightlyRunJob
from core.publish import enqueue_job_ids
from lanes.conftest import LANES, MODELS, PRICES
from producer.client import Client
from schemas.settings import Settings
from workers.lanes.flush import flush_once
from workers.lanes.poll import poll_once
from workers.nightly.context import NightlyContext
from workers.nightly.run import run_nightly
from workers.runtime import build_runtime
from workers.sweeper import broker_backlog, publish_ids, sweep_once

N = 1000


class Beat:
    """Sweeper, flusher and poller every `every_s` seconds in a thread (beat's schedule),
    and one Redis FLUSHDB once the first provider batch exists."""

    def __init__(self, rt: Any, redis_url: str, every_s: float = 0.3) -> None:
        self.rt, self.redis_url, self.every_s = rt, redis_url, every_s
        self.stop = threading.Event()
        self.flushed_redis = False
        self.errors: list[BaseException] = []
        self.settings = Settings(
            database_url=rt.settings.database_url, broker_url=redis_url, requeue_after_s=2.0
        )
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self._tick()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
            time.sleep(self.every_s)

    def _tick(self) -> None:
        now = datetime.now(UTC)
        flushed = flush_once(self.rt, now)
        if flushed.created and not self.flushed_redis:
            redis.Redis.from_url(self.redis_url).flushdb()  # every queued message lost
            self.flushed_redis = True
        polled = poll_once(self.rt, datetime.now(UTC))
        if polled.requeued:
            enqueue_job_ids(self.redis_url, polled.requeued)
        sweep_once(
            self.rt.sessions, self.settings, datetime.now(UTC),
            backlog=broker_backlog("llmq", self.redis_url), publish=publish_ids(self.redis_url),
        )  # fmt: skip

    def __enter__(self) -> Beat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def _night(rig: dict[str, Any], tag: str, enabled: bool, day: date) -> dict[str, Any]:
    sim, tmp = rig["sim"], rig["tmp"]
    nightly = {"tenant": f"night-{tag}", "report_dir": str(tmp / "reports")}
    path = write_llm_config(
        tmp / f"llm_{tag}.yaml", sim.url,
        [model("m", "openai", model_id=MODELS["openai"], is_default=True, **PRICES)],
        nightly=nightly, batch_lane={**LANES, "enabled": enabled, "flush_after_s": 0.5},
    )  # fmt: skip
    config = load_test_config(path)
    lines = tmp / f"{tag}.jsonl"
    lines.write_text(
        "".join(
            json.dumps({"custom_id": f"{tag}{i}", "prompt": f"say {i} things"}) + "\n"
            for i in range(N)
        )
    )
    with Client(rig["db"], rig["redis"], config) as client:
        client.submit(lines, tenant=f"team-{tag}", nightly=True)
    workers = start_workers(worker_env(rig["db"], rig["redis"], path), 1, 8, log_dir=tmp)
    settings = Settings(database_url=rig["db"], broker_url=rig["redis"], embedded=True)
    rt = build_runtime(settings, config, concurrency=4)
    try:
        ctx = NightlyContext(
            rt.sessions, rt.engine, config, lambda ids: enqueue_job_ids(rig["redis"], list(ids)),
            poll_s=0.3, wait_timeout_s=240,
        )  # fmt: skip
        with Beat(rt, rig["redis"]) as beat:
            result = run_nightly(ctx, day)
        assert not beat.errors, beat.errors
        assert beat.flushed_redis or not enabled  # Redis was wiped mid-run
        assert result.report is not None and result.report["complete"], workers[0].logs()[-3000:]
        return result.report
    finally:
        for w in workers:
            w.kill()
        rt.close()


@pytest.fixture()
def rig(clean_db: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from lanes.conftest import SIM_PRICES
    from simulator.server import start_in_thread

    sim = start_in_thread()
    sim.set_prices(dict(SIM_PRICES))
    yield {"sim": sim, "db": clean_db, "redis": redis_url, "tmp": tmp_path}
    sim.stop()


def _run_cost(engine: Any, run_tenant: str) -> tuple[int, int, Decimal]:
    """(succeeded jobs, attempts, ledger cost) of one night's jobs."""
    with Session(engine) as s:
        linked = (
            select(NightlyRunJob.job_id)
            .join(Job, Job.id == NightlyRunJob.job_id)
            .where(Job.tenant == run_tenant)
        )
        ok = s.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.id.in_(linked), Job.state == "succeeded")
        )
        n = s.scalar(select(func.count()).select_from(Attempt).where(Attempt.job_id.in_(linked)))
        cost = s.scalar(
            select(func.coalesce(func.sum(Attempt.cost_usd), 0)).where(Attempt.job_id.in_(linked))
        )
    return int(ok or 0), int(n or 0), Decimal(cost)


def test_a_thousand_job_night_costs_half_and_matches_the_simulators_bill(rig, engine):  # type: ignore[no-untyped-def]
    batch_report = _night(rig, "lanes", True, date(2026, 12, 1))
    sync_report = _night(rig, "sync", False, date(2026, 12, 2))
    ok_b, n_b, cost_b = _run_cost(engine, "night-lanes")
    ok_s, n_s, cost_s = _run_cost(engine, "night-sync")
    assert (ok_b, ok_s) == (N, N)
    assert n_b == N and n_s == N  # every job once: nothing lost, nothing run twice
    assert batch_report["lanes"]["batch"]["succeeded"] == N
    assert sync_report["lanes"]["sync"]["succeeded"] == N
    billed = {r["lane"]: Decimal(r["usd"]) for r in rig["sim"].billing()}
    assert cost_b == billed["batch"] and cost_s == billed["sync"]  # ledger == simulator bill
    assert cost_b <= Decimal("0.51") * cost_s, (cost_b, cost_s)
    assert Decimal(batch_report["lanes"]["saved_usd"]) == cost_s - cost_b  # same prompts
    md = (Path(rig["tmp"]) / "reports" / "nightly-2026-12-01.md").read_text()
    assert f"Saved by batch lanes: {batch_report['lanes']['saved_usd']} USD" in md
    with Session(engine) as s:  # nothing left reserved; windows == ledger
        for w in s.scalars(select(BudgetWindow)):
            assert w.reserved_usd == 0 and w.reserved_tokens == 0
    print(
        f"\nnightly {N} jobs: batch lanes {cost_b} USD, sync {cost_s} USD, ratio {cost_b / cost_s:.3f}"
    )
