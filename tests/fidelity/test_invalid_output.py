"""Guaranteed structured output (issue 15, Deliver 4) through real workers and the simulator:
a share of invalid JSON from one provider is retried on the fallback deployment, and a job that
never gets valid output fails `invalid_output` with the last reply kept. Invalid replies were
billed: their tokens and cost are on the attempt rows and settled against the quota."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jsonschema
from helpers.jobs import wait_settled
from helpers.llm_config import load_test_config, model
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ledger.db import make_sessionmaker
from core.ledger.models import Attempt, Job
from core.ledger.quota_limits_repo import set_limits
from producer.client import Client
from tests.fidelity.batch_file import INVOICE
from tests.quota.checks import assert_budget_holds
from workers.providers import capabilities_of

N_JOBS = 40
CHEAP = {"input_cost_per_mtok": "0.1", "output_cost_per_mtok": "0.4"}
DEARER = {"input_cost_per_mtok": "1", "output_cost_per_mtok": "5"}
FORMAT = {"type": "json_schema", "json_schema": {"name": "invoice", "schema": INVOICE}}


def write_json_lines(path: Any, n: int) -> Any:
    rows = [
        {
            "custom_id": f"inv-{i:02d}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "m",
                "messages": [{"role": "user", "content": f"Extract invoice {i} as json."}],
                "response_format": FORMAT,
            },
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def attempts_of(engine: Any, batch_id: Any) -> list[Any]:
    with Session(engine) as s:
        return s.execute(
            select(
                Job.custom_id,
                Attempt.attempt_no,
                Attempt.provider,
                Attempt.outcome,
                Attempt.error_kind,
                Attempt.prompt_tokens,
                Attempt.completion_tokens,
                Attempt.cost_usd,
            )
            .join(Job, Job.id == Attempt.job_id)
            .where(Job.batch_id == batch_id)
            .order_by(Job.custom_id, Attempt.attempt_no)
        ).all()


def run(rig, models: list[dict[str, Any]], n: int, **config: Any) -> tuple[Any, list[dict[str, Any]]]:  # type: ignore[no-untyped-def]  # fmt: skip
    path = rig.configure(models, **config)
    cfg = load_test_config(path)
    with Session(rig.engine) as s, s.begin():  # a limit, so the windows are kept and checked
        set_limits(s, "default", "day", Decimal("100"), None, datetime.now(UTC))
    rig.start(concurrency=4)
    source = write_json_lines(rig.tmp_path / "invoices.jsonl", n)
    with Client(rig.database_url, rig.redis_url, cfg, capabilities=lambda d: capabilities_of(d, cfg)) as client:  # fmt: skip
        batch_id = client.submit(source, use_cache=False)
        wait_settled(rig.engine, batch_id, timeout_s=120, on_timeout=rig.logs)
        return batch_id, list(client.iter_results(batch_id))


def test_a_fifth_invalid_json_from_one_provider_is_retried_on_the_fallback(rig, sim) -> None:  # type: ignore[no-untyped-def]
    sim.configure("openai", rate_invalid_json=0.2)
    models = [
        model("m", "openai", model_id="gpt-4o-mini", is_default=True, **CHEAP),
        model("m", "anthropic", model_id="claude-haiku-4-5", **DEARER),
    ]
    batch_id, results = run(rig, models, N_JOBS)

    for r in results:  # valid, or honestly failed with the reply kept
        if r["status"] == "succeeded":
            jsonschema.validate(r["response"]["parsed"], INVOICE)
            assert json.loads(r["response"]["text"]) == r["response"]["parsed"]
        else:
            assert r["status"] == "failed" and r["error"]["type"] == "invalid_output", r
            assert r["error"]["raw"]["text"] is not None
    rows = attempts_of(rig.engine, batch_id)
    invalid = [a for a in rows if a.error_kind == "invalid_output"]
    assert invalid, "the simulator's 20% invalid JSON never happened"
    assert {a.provider for a in invalid} == {"openai"}
    for a in invalid:  # billed: tokens and cost on the attempt
        assert a.outcome == "failed" and a.prompt_tokens > 0 and a.completion_tokens > 0
        assert a.cost_usd is not None and a.cost_usd > 0
        then = [b for b in rows if b.custom_id == a.custom_id and b.attempt_no == a.attempt_no + 1]
        assert [(b.provider, b.outcome) for b in then] == [("anthropic", "succeeded")]
    assert all(r["status"] == "succeeded" for r in results)  # the fallback is always valid
    # the ledger holds exactly what the simulator served, invalid replies included
    stats = sim.stats()["providers"]
    served_prompt = sum(
        m["prompt_tokens"] for p in stats.values() for m in p.get("models", {}).values()
    )
    assert sum(a.prompt_tokens for a in rows) == served_prompt
    with make_sessionmaker(rig.engine)() as s:
        assert_budget_holds(s, "default", datetime.now(UTC))


def test_no_valid_output_within_the_budget_fails_invalid_output_with_the_reply(rig, sim) -> None:  # type: ignore[no-untyped-def]
    sim.configure("openai", rate_invalid_json=1.0)
    models = [model("m", "openai", model_id="gpt-4o-mini", is_default=True, **CHEAP)]
    batch_id, results = run(rig, models, 3, routing={"max_attempts": 2})

    for r in results:
        assert r["status"] == "failed" and r["attempts"] == 2, r
        assert r["error"]["type"] == "invalid_output"
        assert "does not match the schema" in r["error"]["message"] or "not JSON" in r["error"]["message"]  # fmt: skip
        assert r["error"]["raw"]["text"], "the last raw reply is kept"
        assert r["usage"] is None  # the job's own usage: no valid answer
        assert Decimal(r["cost_usd"]) > 0  # but its attempts were billed
    rows = attempts_of(rig.engine, batch_id)
    assert len(rows) == 6 and {a.error_kind for a in rows} == {"invalid_output"}
    assert all(a.prompt_tokens > 0 and a.cost_usd > 0 for a in rows)
    with make_sessionmaker(rig.engine)() as s:
        assert_budget_holds(s, "default", datetime.now(UTC))
