"""End to end: a prepared backlog (deferred batch, inbox files good and bad, parked jobs,
retryable failures), a real Celery worker subprocess against the simulator, the run triggered
by hand. Everything due is processed once; the report's figures are the ledger's and
`llmq usage`'s; a second trigger does nothing; the task path (what beat sends) works too."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal

from helpers.llm_config import model
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.ledger import nightly_repo
from core.ledger.models import BudgetWindow, NightlyRun
from core.ledger.usage_repo import usage_report
from llmq.cli import app as cli
from nightly.backlog import (
    batch_ids,
    failed,
    job_states,
    linked,
    parked,
    tenants,
    write_bad_jsonl,
    write_jsonl,
)
from nightly.conftest import PRICED
from producer.client import Client
from workers.nightly.phases import report_paths
from workers.nightly.run import run_nightly
from workers.nightly.task import send_run

WAIT_S = 120.0


def _cli(rig, *args: str) -> str:  # type: ignore[no-untyped-def]
    env = {**rig.env(), "COLUMNS": "200"}
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def _prepare_backlog(rig) -> dict[str, list]:  # type: ignore[no-untyped-def,type-arg]
    """4 deferred (the producer API), inbox a (3) + b (2) + a bad file, 2 parked due and 1 not,
    2 failed with a retryable kind after their whole attempt budget, 1 failed for good."""
    with Client(rig.database_url, rig.redis_url, rig.config) as client:
        source = write_jsonl(rig.tmp_path / "later.jsonl", 4, "later")
        deferred_batch = client.submit(source, tenant="team-a", nightly=True)
        assert client.get_batch(deferred_batch).counts["deferred"] == 4
    write_jsonl(rig.inbox / "a.jsonl", 3, "a")
    write_bad_jsonl(rig.inbox / "bad.jsonl")
    write_jsonl(rig.inbox / "b.jsonl", 2, "b")
    return {
        "due": parked(rig.engine, 2, due=True),
        "not_due": parked(rig.engine, 1, due=False),
        "retryable": failed(rig.engine, 2, "rate_limited", attempts=6),
        "permanent": failed(rig.engine, 1, "bad_request", attempts=1),
    }


def _assert_figures_are_the_ledgers(rig, sim, report, day) -> None:  # type: ignore[no-untyped-def]
    """Report == attempts ledger == simulator == budget window == `llmq usage`."""
    with Session(rig.engine) as s:
        run = nightly_repo.get_run(s, "nightly", day)
        rows = usage_report(s, run.started_at, "nightly", ("provider", "model"))
        spent = s.scalar(
            select(BudgetWindow.spent_usd).where(
                BudgetWindow.scope == "tenant:nightly", BudgetWindow.period == "day"
            )
        )
    assert run.state == "done" and run.report == report
    served = sim.stats()["providers"]["openai"]["models"]["m"]
    assert served["served"] == 13 == report["usage"]["attempts"] == report["usage"]["succeeded"]
    assert report["usage"]["prompt_tokens"] == served["prompt_tokens"]
    assert report["usage"]["completion_tokens"] == served["completion_tokens"]
    assert [
        (r["provider"], r["model"], r["attempts"], r["prompt_tokens"], r["completion_tokens"])
        + (Decimal(r["cost_usd"]),)
        for r in report["by_provider_model"]
    ] == [
        (r.group["provider"], r.group["model"], r.attempts, r.prompt_tokens, r.completion_tokens)
        + (r.cost_usd,)
        for r in rows
    ]
    assert Decimal(report["usage"]["cost_usd"]) == spent > 0
    usage_cli = json.loads(
        _cli(rig, "usage", "--json", "--tenant", "nightly", "--since", report["started_at"])
    )
    assert usage_cli["total"]["total_tokens"] == report["usage"]["total_tokens"]
    assert usage_cli["total"]["cost_usd"] == report["usage"]["cost_usd"]
    assert usage_cli["total"]["attempts"] == report["usage"]["attempts"]
    costs = [Decimal(j["cost_usd"]) for j in report["costliest_jobs"]]
    assert len(costs) == 10 and costs == sorted(costs, reverse=True)


def test_nightly_run_processes_the_backlog_once_and_reports_the_ledger(night, sim) -> None:  # type: ignore[no-untyped-def]
    rig = night
    rig.configure()
    rig.start_workers(concurrency=8)
    jobs = _prepare_backlog(rig)
    day = datetime.now(UTC).date()

    result = run_nightly(rig.context(), day)

    assert result.status == "done", rig.logs()
    picked = linked(rig.engine, day)
    assert len(picked) == 4 + 3 + 2 + 2 + 2
    assert job_states(rig.engine, list(picked)) == {"succeeded": 13}, rig.logs()
    assert tenants(rig.engine, list(picked)) == {"nightly"}
    assert set(jobs["due"]) | set(jobs["retryable"]) <= set(picked)
    assert job_states(rig.engine, jobs["not_due"]) == {"quota_exceeded": 1}
    assert job_states(rig.engine, jobs["permanent"]) == {"failed": 1}
    assert sorted(p.name for p in (rig.inbox / "processed").iterdir()) == ["a.jsonl", "b.jsonl"]
    assert (rig.inbox / "rejected" / "bad.jsonl.errors.txt").is_file()
    report = result.report
    assert report["jobs"]["by_source"] == {"inbox": 5, "deferred": 4, "parked": 2, "retry": 2}
    assert report["jobs"]["by_state"]["succeeded"] == 13 and report["jobs"]["total"] == 13
    assert report["inbox"]["ingested"] == 2 and report["inbox"]["rejected"] == 1
    assert report["failures"]["jobs_by_reason"] == {}
    _assert_figures_are_the_ledgers(rig, sim, report, day)

    json_path, md_path = report_paths(rig.reports, day)
    assert result.paths == [json_path, md_path]
    assert json.loads(json_path.read_text()) == report
    assert f"# Nightly run {day}" in md_path.read_text()
    assert json.loads(_cli(rig, "nightly", "report", "--json", "--date", str(day))) == report
    assert _cli(rig, "nightly", "report") == md_path.read_text()

    # A second trigger on the same date does nothing, by hand or from the CLI.
    write_jsonl(rig.inbox / "c.jsonl", 1, "c")
    batches = batch_ids(rig.engine)
    assert run_nightly(rig.context(), day).status == "already_done"
    assert "already ran" in _cli(rig, "nightly", "run", "--now", "--date", str(day))
    assert batch_ids(rig.engine) == batches
    assert (rig.inbox / "c.jsonl").is_file()
    assert sim.stats()["total_requests"] == 13


def test_the_run_stays_within_the_nightly_budget(night, sim) -> None:  # type: ignore[no-untyped-def]
    rig = night
    budget = Decimal("0.002")
    rig.configure(
        budget_usd=str(budget),
        models=[model("m", "openai", is_default=True, max_tokens=100, **PRICED)],
    )
    rig.start_workers(concurrency=8)
    write_jsonl(rig.inbox / "big.jsonl", 30, "big")
    day = datetime.now(UTC).date()

    out = _cli(rig, "nightly", "run", "--now")  # the CLI runs it in-process, for today

    assert out.startswith(f"nightly run {day}: 30 jobs"), out
    with Session(rig.engine) as s:
        report = nightly_repo.get_run(s, "nightly", day).report
    by_state = report["jobs"]["by_state"]
    assert by_state["succeeded"] >= 1 and by_state["quota_exceeded"] >= 1, rig.logs()
    assert by_state["succeeded"] + by_state["quota_exceeded"] == 30
    cost = Decimal(report["usage"]["cost_usd"])
    assert 0 < cost <= budget
    assert report["budget_usd"] == "0.00200000"
    assert report["complete"] is True


def test_the_task_beat_sends_runs_on_a_worker_exactly_once(night, sim) -> None:  # type: ignore[no-untyped-def]
    rig = night
    rig.configure()
    rig.start_workers(concurrency=4, queues="llmq,llmq.control")
    write_jsonl(rig.inbox / "a.jsonl", 3, "a")
    day = datetime.now(UTC).date()

    send_run(rig.redis_url, day)
    # Sent twice (two beats, or a redelivery): the second finds the run done, or busy.
    assert "sent to the workers" in _cli(rig, "nightly", "run", "--date", str(day))

    deadline = time.monotonic() + WAIT_S
    while True:
        with Session(rig.engine) as s:
            state = s.scalar(select(NightlyRun.state).where(NightlyRun.run_date == day))
        logs = rig.logs()
        finished = logs.count("llmq.nightly_run[") >= 4  # two received, two succeeded
        if state == "done" and finished:
            break
        assert time.monotonic() < deadline, f"nightly task did not finish: {state}\n{logs}"
        time.sleep(0.2)
    assert "'done'" in logs and ("'already_done'" in logs or "'busy'" in logs)
    assert json.loads(report_paths(rig.reports, day)[0].read_text())["jobs"]["total"] == 3
    assert sim.stats()["total_requests"] == 3
