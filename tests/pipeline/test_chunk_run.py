"""`run_chunk` (issue 21) against the real simulator, Postgres and Redis: a chunk's jobs end
exactly as one-job runs would, with their calls in flight together.

No Celery here (tests/pipeline/test_worker_e2e.py and the chaos suite run chunks in real
workers, since `llmq submit` publishes them). Every test checks the ledger: jobs, attempt
rows, and the quota windows (nothing left reserved, spent equal to the attempts' cost).
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from helpers.jobs import seed
from helpers.llm_config import model
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.ledger import chunk_repo, jobs_repo, quota_limits_repo
from core.ledger.db import session_scope
from core.ledger.models import Attempt, BudgetWindow, Job
from workers.chunk.run import run_chunk
from workers.run_types import Outcome

PRICED = {"input_cost_per_mtok": "1", "output_cost_per_mtok": "2"}


def now() -> datetime:
    return datetime.now(UTC)


def states(rt, ids) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        rows = s.execute(select(Job.state, func.count()).where(Job.id.in_(ids)).group_by(Job.state))
        return {state: n for state, n in rows}


def attempts(rt) -> list[Attempt]:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        return list(s.scalars(select(Attempt)))


def tenant_windows(rt) -> list[BudgetWindow]:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        return [w for w in s.scalars(select(BudgetWindow)) if w.period in ("day", "month")]


def assert_quota_matches_attempts(rt) -> None:  # type: ignore[no-untyped-def]
    rows = attempts(rt)
    spent_usd = sum((a.cost_usd or Decimal(0) for a in rows), Decimal(0))
    spent_tokens = sum(a.prompt_tokens + a.completion_tokens for a in rows)
    for w in tenant_windows(rt):
        assert (w.reserved_tokens, w.reserved_usd) == (0, 0)
        assert (w.spent_tokens, w.spent_usd) == (spent_tokens, spent_usd)


def test_a_chunk_succeeds_in_one_pass_with_one_attempt_each(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **PRICED)], redis_url=redis_url)
    _, ids = seed(rt.engine, 40, "m")

    out = run_chunk(ids, rt, now())

    assert out == {i: Outcome("succeeded") for i in ids}
    assert states(rt, ids) == {"succeeded": 40}
    rows = attempts(rt)
    assert len(rows) == 40 and {a.outcome for a in rows} == {"succeeded"}
    assert all(a.cost_usd and a.cost_usd > 0 and a.latency_ms is not None for a in rows)
    assert sim.stats()["total_requests"] == 40
    assert_quota_matches_attempts(rt)
    with Session(rt.engine) as s:  # the job rows carry what their attempt billed
        for job in s.scalars(select(Job).where(Job.id.in_(ids))):
            assert job.result["text"].startswith("sim:") and job.result["provider"] == "openai"
            assert job.cost_usd > 0 and job.finished_at is not None and job.lease_until is None


def test_calls_are_in_flight_together(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")], redis_url=redis_url, concurrency=30)
    sim.configure("openai", latency_ms=400)
    _, ids = seed(rt.engine, 30, "m")

    started = time.monotonic()
    out = run_chunk(ids, rt, now())
    took = time.monotonic() - started

    assert set(out.values()) == {Outcome("succeeded")}
    assert took < 30 * 0.4 / 3, f"30 calls of 400 ms took {took:.1f}s: not concurrent"


def test_a_duplicate_chunk_runs_nothing_twice(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **PRICED)], redis_url=redis_url)
    sim.configure("openai", latency_ms=300)
    _, ids = seed(rt.engine, 20, "m")
    results: list[dict] = []  # type: ignore[type-arg]
    threads = [
        threading.Thread(target=lambda: results.append(run_chunk(ids, rt, now()))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    succeeded = [i for out in results for i, o in out.items() if o.status == "succeeded"]
    assert sorted(succeeded) == sorted(ids)  # each job exactly once, across the three runs
    assert len(attempts(rt)) == 20 and sim.stats()["total_requests"] == 20
    assert_quota_matches_attempts(rt)


def test_a_quota_that_fits_part_of_the_chunk_parks_the_rest(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", max_tokens=50)], redis_url=redis_url)
    _, ids = seed(rt.engine, 10, "m")
    [probe] = _reserved_tokens_of_one(rt, ids[0])
    with session_scope(rt.sessions) as s:  # room for three worst cases, not four
        quota_limits_repo.set_limits(s, "default", "day", None, probe * 3 + probe // 2, now())

    out = run_chunk(ids[1:], rt, now())

    # The chunk's sum (nine worst cases) does not fit: the jobs go one by one, each reserving
    # its worst case and settling at what it used, until a worst case no longer fits.
    statuses = [o.status for o in out.values()]
    assert set(statuses) == {"succeeded", "parked"} and len(statuses) == 9
    done = statuses.count("succeeded")
    assert states(rt, ids[1:]) == {"succeeded": done, "quota_exceeded": 9 - done}
    assert sim.stats()["total_requests"] == 1 + done
    for w in tenant_windows(rt):
        assert w.reserved_tokens == 0
        assert w.limit_tokens is None or w.spent_tokens <= w.limit_tokens  # never overshoot


def _reserved_tokens_of_one(rt, job_id: uuid.UUID) -> list[int]:  # type: ignore[no-untyped-def]
    """Run one job alone; its attempt's reservation (every job here has the same)."""
    assert run_chunk([job_id], rt, now()) == {job_id: Outcome("succeeded")}
    return [a.reserved_tokens for a in attempts(rt)]


def test_failures_retry_one_by_one_and_successes_still_finish(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **PRICED)], redis_url=redis_url)
    sim.configure("openai", rate_500=0.5)
    _, ids = seed(rt.engine, 30, "m")

    out = run_chunk(ids, rt, now())

    # later waves may find the deployment cooling down after the 500s: those wait, unclaimed
    statuses = {o.status for o in out.values()}
    assert statuses <= {"succeeded", "retry_later", "fallback", "failed", "waiting"}
    retried = [i for i, o in out.items() if o.status == "retry_later"]
    assert retried and all(out[i].countdown_s is not None for i in retried)
    with Session(rt.engine) as s:
        for job in s.scalars(select(Job).where(Job.id.in_(retried))):
            assert job.state == "queued" and job.attempts == 1
    failed_rows = [a for a in attempts(rt) if a.outcome == "failed"]
    assert len(failed_rows) == len(retried) and {a.http_status for a in failed_rows} == {500}
    assert_quota_matches_attempts(rt)


def test_jobs_the_chunk_cannot_take_at_once_go_one_by_one(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", rpm=3)], redis_url=redis_url)
    _, ids = seed(rt.engine, 6, "m")

    out = run_chunk(ids, rt, now())

    assert sorted(o.status for o in out.values()) == ["succeeded"] * 3 + ["waiting"] * 3
    waiting = [i for i, o in out.items() if o.status == "waiting"]
    with Session(rt.engine) as s:
        for job in s.scalars(select(Job).where(Job.id.in_(waiting))):
            assert (job.state, job.attempts) == ("queued", 0) and job.not_before is not None
    assert sim.stats()["total_requests"] == 3


def test_finished_and_unknown_ids_are_not_claimed(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")], redis_url=redis_url)
    _, ids = seed(rt.engine, 3, "m")
    assert len(run_chunk(ids[:1], rt, now())) == 1

    out = run_chunk([*ids, uuid.uuid4()], rt, now())

    assert set(out) == set(ids[1:]) and sim.stats()["total_requests"] == 3


def test_bulk_writes_keep_the_fence_per_job(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    """A job whose claim was superseded (its attempts counter moved on) is not written."""
    rt = make_runtime([model("m", "openai")], redis_url=redis_url)
    _, ids = seed(rt.engine, 2, "m")
    with session_scope(rt.sessions) as s:
        claims = jobs_repo.claim_jobs(s, ids, now(), 300.0)
    with session_scope(rt.sessions) as s:  # someone else claims the second job again
        s.execute(update(Job).where(Job.id == ids[1]).values(attempts=Job.attempts + 1))
    from core.ledger.jobs_repo import AttemptStart

    start = AttemptStart("openai", "m", "openai/m", now(), 10, Decimal("0.001"), 0)
    with session_scope(rt.sessions) as s:
        written = chunk_repo.start_attempts(s, [(c, start) for c in claims])
    assert written == {ids[0]}
    assert [a.job_id for a in attempts(rt)] == [ids[0]]


def test_jobs_on_the_one_job_path_run_side_by_side(make_runtime, sim, redis_url) -> None:  # type: ignore[no-untyped-def]
    """A job the wave hands to the one-job path (here: one with a deadline, lanes off) makes
    its own call on a side thread, holding its slot, next to the others'."""
    rt = make_runtime([model("m", "openai")], redis_url=redis_url, concurrency=8)
    sim.configure("openai", latency_ms=400)
    _, ids = seed(rt.engine, 8, "m")
    with session_scope(rt.sessions) as s:
        s.execute(update(Job).where(Job.id.in_(ids)).values(deadline=now()))

    started = time.monotonic()
    out = run_chunk(ids, rt, now())
    took = time.monotonic() - started

    assert out == {i: Outcome("succeeded") for i in ids}
    assert took < 8 * 0.4 / 2, f"8 one-job calls of 400 ms took {took:.1f}s: one after another"
    assert len(attempts(rt)) == 8 and sim.stats()["total_requests"] == 8
