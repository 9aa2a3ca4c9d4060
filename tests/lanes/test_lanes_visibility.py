"""What people see of batch lanes (issue 18): `llmq status`, `llmq usage` and `llmq job` per
lane with the USD saved, and the Prometheus gauges of open provider batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from lanes.conftest import Lanes, models_for
from llmq.cli import app as cli
from workers.lanes.flush import flush_once
from workers.observability.metrics import LedgerCollector


def _cli(lanes: Lanes, *args: str) -> str:
    env = {"LLMQ_DATABASE_URL": lanes.database_url, "LLMQ_CONFIG": str(lanes.config_path),
           "LLMQ_DOTENV": str(lanes.tmp_path / "no.env"), "COLUMNS": "200"}  # fmt: skip
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def _scrape(lanes: Lanes, now: datetime) -> str:
    registry = CollectorRegistry()
    registry.register(LedgerCollector(lanes.engine, clock=lambda: now))
    return generate_latest(registry).decode()


def test_status_usage_and_job_show_lanes_and_the_saving(lanes: Lanes):  # type: ignore[no-untyped-def]
    lanes.configure(models_for("openai"))
    ids = lanes.submit(4)
    sync_ids = lanes.submit(2, deadline_s=None)
    lanes.run([*ids, *sync_ids])
    lanes.drive(ids)
    batch_id = str(lanes.attempts([ids[0]])[0].job_id)
    status = json.loads(_cli(lanes, "job", batch_id, "--json"))
    attempt = status["attempts"][0]
    assert attempt["lane"] == "batch" and attempt["provider_batch_id"].startswith("batch_")
    assert "provider batch batch_" in _cli(lanes, "job", batch_id)
    usage = json.loads(_cli(lanes, "usage", "--since", "1h", "--json"))
    cost_b, cost_s = lanes.ledger_cost("batch"), lanes.ledger_cost(None)
    assert usage["lanes"]["batch"]["attempts"] == 4 and usage["lanes"]["sync"]["attempts"] == 2
    assert usage["lanes"]["batch"]["cost_usd"] == f"{cost_b:.8f}"
    assert usage["lanes"]["saved_usd"] == f"{cost_b:.8f}"  # half price: saved == paid
    assert "saved by batch lanes $" in _cli(lanes, "usage", "--since", "1h", "--by", "lane")
    with lanes.engine.connect() as conn:
        from sqlalchemy import select

        from core.ledger.models import Job

        batch = conn.execute(select(Job.batch_id).where(Job.id == ids[0])).scalar_one()
    st = json.loads(_cli(lanes, "status", str(batch), "--json"))
    assert st["lanes"]["batch"]["succeeded"] == 4 and st["lanes"]["sync"]["attempts"] == 0
    assert "saved by batch lanes" in _cli(lanes, "status", str(batch))
    assert cost_s > 0


def test_prometheus_shows_open_provider_batches_and_their_age(lanes: Lanes):  # type: ignore[no-untyped-def]
    rt = lanes.configure(models_for("google"))
    lanes.sim.configure("google", batch_delay_s=3600)
    lanes.run(lanes.submit(3))
    now = datetime.now(UTC)
    flush_once(rt, now, force=True)
    text = _scrape(lanes, now + timedelta(seconds=90))
    assert 'llmq_provider_batches_open{deployment="google/gemini-2.5-flash"} 1.0' in text
    line = next(
        x for x in text.splitlines() if x.startswith("llmq_provider_batch_oldest_age_seconds{")
    )
    assert 89.0 <= float(line.rsplit(" ", 1)[1]) <= 91.0
    assert 'llmq_jobs{state="batched"} 3.0' in text
