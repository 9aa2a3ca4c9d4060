"""The nightly run's bookkeeping, on Postgres and on SQLite, without workers: runs are stopped
after a phase (as a crash there would leave them) and resumed; jobs are finished by hand
where a test needs the report. The published ids are recorded instead of sent."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.ledger import nightly_repo, quota_limits_repo
from core.ledger.models import Batch, InboxFile, Job
from nightly.backlog import (
    batch_ids,
    count,
    failed,
    job_states,
    linked,
    parked,
    seed_in_state,
    tenants,
    write_bad_jsonl,
    write_jsonl,
)
from workers.nightly.run import run_nightly

D1, D2, D3 = date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 3)


def _finish(rig, ids) -> None:  # type: ignore[no-untyped-def]
    """Stand in for the workers: the jobs succeed."""
    with Session(rig.engine) as s, s.begin():
        s.execute(
            update(Job)
            .where(Job.id.in_(list(ids)))
            .values(state="succeeded", finished_at=datetime.now(UTC))
        )


def test_a_run_stopped_mid_way_resumes_without_redoing_finished_phases(ledger_night) -> None:  # type: ignore[no-untyped-def]
    rig = ledger_night
    rig.configure(budget_usd="3.5")
    _, deferred = seed_in_state(rig.engine, 3, "deferred")
    write_jsonl(rig.inbox / "a.jsonl", 2, "a")

    first = run_nightly(rig.context(processed=False), D1, stop_after="release")
    assert (first.status, first.phases_run) == ("stopped", ["ingest", "release"])
    assert (rig.inbox / "processed" / "a.jsonl").is_file() and not (rig.inbox / "a.jsonl").exists()
    picked = linked(rig.engine, D1)
    assert sorted(picked.values()) == ["deferred"] * 3 + ["inbox"] * 2
    assert set(rig.published) == set(picked) and len(rig.published) == 5
    assert job_states(rig.engine, list(picked)) == {"queued": 5}
    assert tenants(rig.engine, list(picked)) == {"nightly"}
    with Session(rig.engine) as s:
        assert quota_limits_repo.get_limits(s, "nightly")["day"] == (Decimal("3.5"), None)
        assert nightly_repo.get_run(s, "nightly", D1).phase == "parked"

    # After the "crash": more work arrives. Ingest and release are done, so these wait.
    _, late_deferred = seed_in_state(rig.engine, 2, "deferred")
    write_jsonl(rig.inbox / "late.jsonl", 1, "late")
    due_parked = parked(rig.engine, 1, due=True)
    later_parked = parked(rig.engine, 1, due=False)
    retryable = failed(rig.engine, 1, "rate_limited")

    second = run_nightly(rig.context(processed=False), D1, stop_after="retry")
    assert (second.status, second.phases_run) == ("stopped", ["parked", "retry"])
    assert job_states(rig.engine, late_deferred) == {"deferred": 2}
    assert (rig.inbox / "late.jsonl").is_file()
    assert job_states(rig.engine, due_parked + retryable) == {"queued": 2}
    assert job_states(rig.engine, later_parked) == {"quota_exceeded": 1}
    assert rig.published[5:] == due_parked + retryable

    _finish(rig, linked(rig.engine, D1))
    third = run_nightly(rig.context(processed=False), D1)
    assert (third.status, third.phases_run) == ("done", ["wait", "report"])
    report = third.report
    assert report["jobs"]["by_source"] == {"inbox": 2, "deferred": 3, "parked": 1, "retry": 1}
    assert report["jobs"]["by_state"]["succeeded"] == 7 and report["jobs"]["total"] == 7
    assert report["inbox"]["files"][0]["name"] == "a.jsonl"
    assert report["complete"] is True

    again = run_nightly(rig.context(processed=False), D1)
    assert (again.status, again.phases_run) == ("already_done", [])
    assert again.report == report
    assert job_states(rig.engine, late_deferred) == {"deferred": 2}
    assert len(rig.published) == 7


def test_bad_inbox_file_is_rejected_with_its_errors_and_good_files_still_go_in(
    ledger_night,
) -> None:  # type: ignore[no-untyped-def]
    rig = ledger_night
    rig.configure()
    write_jsonl(rig.inbox / "good1.jsonl", 2, "g1")
    write_bad_jsonl(rig.inbox / "bad.jsonl")
    write_jsonl(rig.inbox / "good2.jsonl", 3, "g2")

    result = run_nightly(rig.context(processed=False), D1, stop_after="release")

    assert result.phases_run == ["ingest", "release"]
    assert sorted(p.name for p in rig.inbox.iterdir() if p.is_file()) == []
    assert sorted(p.name for p in (rig.inbox / "processed").iterdir()) == [
        "good1.jsonl",
        "good2.jsonl",
    ]
    rejected = rig.inbox / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == ["bad.jsonl", "bad.jsonl.errors.txt"]
    errors = (rejected / "bad.jsonl.errors.txt").read_text()
    assert "line 2: invalid JSON" in errors and "line 3: unknown model 'no-such-model'" in errors
    assert "line 1" not in errors and "line 4" not in errors
    assert len(rig.published) == 5
    with Session(rig.engine) as s:
        files = {f.name: (f.state, f.batch_id) for f in s.scalars(select(InboxFile))}
        batches = {b.id: (b.tenant, b.total_jobs, b.source) for b in s.scalars(select(Batch))}
    assert files["bad.jsonl"] == ("rejected", None)
    assert {files["good1.jsonl"][0], files["good2.jsonl"][0]} == {"ingested"}
    assert batches[files["good2.jsonl"][1]][:2] == ("nightly", 3)
    assert batches[files["good2.jsonl"][1]][2].endswith("processed/good2.jsonl")


def test_a_file_is_never_ingested_twice(ledger_night) -> None:  # type: ignore[no-untyped-def]
    rig = ledger_night
    rig.configure()
    write_jsonl(rig.inbox / "a.jsonl", 2, "a")
    write_bad_jsonl(rig.inbox / "bad.jsonl")
    run_nightly(rig.context(processed=False), D1, stop_after="ingest")
    before = batch_ids(rig.engine)

    # A crash between the commit and the move leaves the files in the inbox: put them back.
    shutil.copy(rig.inbox / "processed" / "a.jsonl", rig.inbox / "a.jsonl")
    shutil.copy(rig.inbox / "rejected" / "bad.jsonl", rig.inbox / "bad.jsonl")
    run_nightly(rig.context(processed=False), D2, stop_after="ingest")

    assert batch_ids(rig.engine) == before
    assert count(rig.engine, InboxFile) == 2
    assert sorted(p.name for p in (rig.inbox / "processed").iterdir()) == ["a.1.jsonl", "a.jsonl"]
    assert sorted(p.name for p in (rig.inbox / "rejected").iterdir()) == [
        "bad.1.jsonl",
        "bad.1.jsonl.errors.txt",
        "bad.jsonl",
        "bad.jsonl.errors.txt",
    ]
    assert not any(p.is_file() for p in rig.inbox.iterdir())


def test_failed_jobs_are_retried_a_bounded_number_of_times(ledger_night) -> None:  # type: ignore[no-untyped-def]
    rig = ledger_night
    rig.configure(retry_failed_max=2)
    [job] = failed(rig.engine, 1, "rate_limited", attempts=6)
    [exhausted] = failed(rig.engine, 1, "attempts_exhausted", attempts=6)
    [invalid] = failed(rig.engine, 1, "invalid_output", attempts=3)
    [bad] = failed(rig.engine, 1, "bad_request", attempts=1)
    cancelled_batch, [in_cancelled] = seed_in_state(
        rig.engine, 1, "failed", error={"type": "timeout", "message": "t"}, attempts=6
    )
    with Session(rig.engine) as s, s.begin():
        s.execute(update(Batch).where(Batch.id == cancelled_batch).values(state="cancelled"))

    def night(day: date) -> list:  # type: ignore[type-arg]
        rig.published.clear()
        run_nightly(rig.context(processed=False), day, stop_after="retry")
        return sorted(rig.published)

    assert night(D1) == sorted([job, exhausted, invalid])
    with Session(rig.engine) as s:
        assert s.get(Job, job).routing_state == {"attempt_base": 6}
        assert s.get(Job, job).error is None and s.get(Job, job).tenant == "nightly"
    assert job_states(rig.engine, [bad, in_cancelled]) == {"failed": 2}

    def fail_again(attempts: int) -> None:
        with Session(rig.engine) as s, s.begin():
            s.execute(
                update(Job)
                .where(Job.id.in_([job, exhausted, invalid]))
                .values(
                    state="failed", attempts=attempts, error={"type": "timeout", "message": "t"}
                )
            )

    fail_again(8)
    assert night(D2) == sorted([job, exhausted, invalid])
    with Session(rig.engine) as s:
        assert s.get(Job, job).routing_state == {"attempt_base": 8}
    fail_again(10)
    assert night(D3) == []  # two nightly re-runs used up
    assert job_states(rig.engine, [job, exhausted, invalid]) == {"failed": 3}


def test_a_run_held_by_another_process_is_left_alone(night) -> None:  # type: ignore[no-untyped-def]
    rig = night
    rig.configure()
    _, deferred = seed_in_state(rig.engine, 2, "deferred")
    with rig.engine.connect() as other:
        assert nightly_repo.try_lock(other, "nightly", D1)
        result = run_nightly(rig.context(processed=False), D1)
        assert result.status == "busy"
        assert job_states(rig.engine, deferred) == {"deferred": 2}
        nightly_repo.unlock(other, "nightly", D1)
    resumed = run_nightly(rig.context(processed=False), D1, stop_after="release")
    assert resumed.phases_run == ["ingest", "release"]
    assert job_states(rig.engine, deferred) == {"queued": 2}


def test_report_command_says_when_there_is_nothing_to_show(night) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from llmq.cli import app as cli

    rig = night
    rig.configure()
    env = rig.env()
    missing = CliRunner().invoke(cli, ["nightly", "report", "--date", "2026-05-01"], env=env)
    assert missing.exit_code == 1 and "no nightly run for 2026-05-01" in missing.output
    run_nightly(rig.context(processed=False), D1, stop_after="ingest")
    unfinished = CliRunner().invoke(cli, ["nightly", "report", "--date", str(D1)], env=env)
    assert (
        unfinished.exit_code == 1 and "has not finished (next phase: release)" in unfinished.output
    )
    bad = CliRunner().invoke(cli, ["nightly", "run", "--now", "--date", "May 1"], env=env)
    assert bad.exit_code == 2 and "is not a date" in bad.output
