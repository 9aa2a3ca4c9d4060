"""Issue 20 "Deliver": every hostile reply class through a real Celery worker.

Each mode gets its own model `h-<mode>`: a cheap deployment on the hostile provider (tried
first; its own key, so a leak is traced to its mode) and a dearer clean fallback. Asserted:
no job is lost (every job ends, no attempt is `lost`), no budget is refunded or overshot
(windows match the attempts ledger, nothing negative, nothing left reserved), untrusted usage is
booked at the reservation, no job waits past the Retry-After cap, the worker's memory does not
follow a 400 MB reply, and no secret (each key and the gateway header, whole or as 8-character
prefix/suffix) is in the database, the results, the worker log, the metrics or a pickled
exception. The Flower API is not scraped: Flower only sees task ids (tests/monitoring).

Secret scrubbing of echoed fragments, custom headers and request ids (issue 20 items 3-4,
`core/secrets_scrub.py`): a leak from any mode, or of the gateway header, fails the test,
naming the mode and where it was found.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

from helpers.jobs import insert_jobs, publish, spec_for, wait_settled
from helpers.llm_config import model, sim_providers
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from core.ledger.models import Attempt, BudgetWindow, Job
from simulator.config import HostileMode
from tests.quota.checks import assert_budget_holds
from workers.observability.metrics import LedgerCollector

MODES: tuple[str, ...] = get_args(HostileMode)
USAGE_MODES = {m for m in MODES if m.startswith("usage_")}
JOBS_PER_MODE = 2
MAX_RETRY_AFTER_S = 600.0
GATEWAY = "gw-" + secrets.token_hex(16)


def _keys() -> dict[str, str]:
    return {m: f"sk-{i:02d}{secrets.token_hex(14)}" for i, m in enumerate(MODES)}


def _models(keys: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for mode, key in keys.items():
        cheap = {"input_cost_per_mtok": "0.10", "output_cost_per_mtok": "0.10"}
        dear = {"input_cost_per_mtok": "1.00", "output_cost_per_mtok": "1.00"}
        out.append(model(f"h-{mode}", "openai", api_key=key, max_tokens=64, **cheap))
        out.append(model(f"h-{mode}", "anthropic", max_tokens=64, **dear))
    return out


def _providers(sim_url: str) -> dict[str, Any]:
    providers = sim_providers(sim_url)
    providers["openai"].update(
        timeout_s=2.0,  # the slow drip fails as a timeout
        headers={"x-gateway-token": GATEWAY},
        max_retry_after_s=MAX_RETRY_AFTER_S,
    )
    return providers


def _fragments(secret: str) -> set[str]:
    return {secret, secret[:8], secret[-8:]}


def _db_dump(engine: Engine) -> str:
    """Every row of every table, as JSON text."""
    with engine.connect() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        return "\n".join(
            str(row)
            for table in list(tables)
            for row in conn.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t')).scalars()
        )


def _metrics(engine: Engine) -> str:
    registry = CollectorRegistry()
    registry.register(LedgerCollector(engine))
    return generate_latest(registry).decode()


def _history(engine: Engine, batch_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """Each attempt of the batch: (job, n, provider, outcome, error kind, message)."""
    with Session(engine) as s:
        rows = s.execute(
            select(Job.custom_id, Attempt.attempt_no, Attempt.provider, Attempt.outcome)
            .add_columns(Attempt.error_kind, Attempt.error_message)
            .join(Job, Job.id == Attempt.job_id)
            .where(Job.batch_id == batch_id)
            .order_by(Job.custom_id, Attempt.attempt_no)
        )
        errors = s.execute(select(Job.custom_id, Job.error).where(Job.batch_id == batch_id))
        return [tuple(r) for r in rows] + [tuple(r) for r in errors]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_every_hostile_mode_through_a_real_worker(rig, sim) -> None:  # type: ignore[no-untyped-def]
    keys = _keys()
    rig.configure(
        _models(keys),
        providers=_providers(sim.url),
        routing={"max_attempts": 3, "default_cooldown_s": 5.0},
    )
    overrides = {f"h-{mode}": {"hostile": mode} for mode in MODES}
    sim.configure("openai", models=overrides, hostile_body_bytes=400_000_000, hostile_drip_s=8.0)
    [worker] = rig.start(concurrency=4)
    batches: dict[str, uuid.UUID] = {}
    for mode in MODES:
        specs = [spec_for(f"Say hi ({mode} {i}).", custom_id=f"{mode}-{i}") for i in range(2)]
        batches[mode], ids = insert_jobs(rig.engine, specs, f"h-{mode}", max_cost_usd=Decimal(1))
        publish(rig.redis_url, ids)
    for mode, batch_id in batches.items():
        counts = wait_settled(rig.engine, batch_id, timeout_s=120, on_timeout=rig.logs)
        expected = {"failed": 2} if mode == "slow_drip" else {"succeeded": 2}
        assert counts == expected, (mode, counts, _history(rig.engine, batch_id))
    now = datetime.now(UTC)

    with Session(rig.engine) as s:
        attempts = s.scalars(select(Attempt)).all()
        jobs = s.scalars(select(Job)).all()
        by_job = {j.id: j for j in jobs}
        # No job lost, no absurd wait.
        assert all(a.outcome != "lost" for a in attempts)
        assert all(j.result is not None for j in jobs if j.state == "succeeded")
        assert all(
            j.not_before is None or j.not_before < now + timedelta(seconds=MAX_RETRY_AFTER_S + 60)
            for j in jobs
        )
        # No budget refunded or overshot.
        assert all(a.cost_usd is None or a.cost_usd >= 0 for a in attempts)
        assert all(a.prompt_tokens >= 0 and a.completion_tokens >= 0 for a in attempts)
        for w in s.scalars(select(BudgetWindow)).all():
            assert w.spent_usd >= 0 and w.spent_tokens >= 0, w.scope
        for batch_id in batches.values():
            assert_budget_holds(s, "default", now, batch_id)
        # Untrusted usage: the paid answer kept, booked at the reservation.
        for a in attempts:
            mode = by_job[a.job_id].model.removeprefix("h-")
            if mode in USAGE_MODES and a.provider == "openai":
                assert (a.outcome, a.error_kind) == ("succeeded", "malformed_reply"), mode
                assert a.cost_usd == a.reserved_usd
                assert a.prompt_tokens + a.completion_tokens == a.reserved_tokens
            if mode == "huge_body" and a.provider == "openai":
                assert a.error_kind == "reply_too_large"
                assert len(a.error_message or "") < 1000
        # A 400 MB reply never landed anywhere.
        assert max(len(json.dumps(j.result or {})) for j in jobs) < 100_000
    assert _peak_rss_mb(worker.pid) < 350, "worker memory followed the 400 MB reply"

    # No secret stored anywhere.
    sources = {
        "database": _db_dump(rig.engine),
        "worker log": worker.logs(),
        "metrics": _metrics(rig.engine),
    }
    leaks: dict[str, list[str]] = {}
    for mode, key in [*keys.items(), ("gateway header", GATEWAY)]:
        for where, haystack in sources.items():
            found = sorted(f for f in _fragments(key) if f in haystack)
            if found:
                leaks.setdefault(mode, []).append(f"{where}: {found}")
    assert not leaks, f"secrets stored: {leaks}"
