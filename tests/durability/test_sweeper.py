"""The sweeper's steps against a real Postgres ledger: what each step picks, what it leaves,
and that a second or concurrent sweep changes nothing more."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.ledger.db import session_scope
from core.ledger.sweep_repo import SWEEP_LOCK_KEY
from schemas.settings import Settings
from tests.durability.ledger_rows import NOW, Ledger
from workers.sweeper import REQUEUE_LIMIT, SweepCounts, requeue_room, sweep_once

LEASE_S = 10.0
REQUEUE_S = 3.0


class Sent:
    """Collects published job ids (the real publish goes to the broker)."""

    def __init__(self, fail: bool = False) -> None:
        self.ids: list[uuid.UUID] = []
        self.fail = fail

    def __call__(self, ids: Sequence[uuid.UUID]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.ids.extend(ids)


def settings(backlog: int = 100) -> Settings:
    return Settings(lease_s=LEASE_S, requeue_after_s=REQUEUE_S, requeue_backlog=backlog)


def run(
    sessions: sessionmaker[Session], sent: Sent, backlog: int | None = 0, cap: int = 100
) -> SweepCounts:
    return sweep_once(sessions, settings(cap), NOW, backlog=backlog, publish=sent)


def ago(seconds: float) -> object:
    return NOW - timedelta(seconds=seconds)


# ---- a) queued jobs whose message may be lost ---------------------------------------------


def test_requeues_only_due_jobs_with_an_old_message(sessions, ledger: Ledger) -> None:
    b = ledger.batch(total_jobs=6)
    lost = ledger.job(b, enqueued_at=ago(60))
    never_sent = ledger.job(b, enqueued_at=None, created_at=ago(60))
    fresh = ledger.job(b, enqueued_at=ago(1))
    not_due = ledger.job(b, enqueued_at=ago(60), not_before=NOW + timedelta(seconds=30))
    # a countdown message is due at its enqueued_at; it is pending until requeue_after later
    countdown_pending = ledger.job(b, enqueued_at=ago(1), not_before=ago(1))
    countdown_lost = ledger.job(b, enqueued_at=ago(10), not_before=ago(10))

    sent = Sent()
    counts = run(sessions, sent)

    assert set(sent.ids) == {lost, never_sent, countdown_lost}
    assert counts.requeued == 3 and counts.published == 3
    for job_id in sent.ids:
        assert ledger.job_row(job_id).enqueued_at == NOW
    for job_id in (fresh, not_due, countdown_pending):
        assert ledger.job_row(job_id).enqueued_at != NOW


def test_requeue_respects_the_broker_backlog_oldest_first(sessions, ledger: Ledger) -> None:
    b = ledger.batch(total_jobs=5)
    ids = [ledger.job(b, enqueued_at=ago(100 - i)) for i in range(5)]  # ids[0] is the oldest

    full = Sent()  # five messages waiting for five stale jobs: nothing is missing
    assert run(sessions, full, backlog=5, cap=2).requeued == 0
    assert full.ids == []

    some = Sent()  # three waiting: two are missing, the oldest two are re-sent
    counts = run(sessions, some, backlog=3, cap=2)
    assert (counts.requeued, counts.stale) == (2, 5)
    assert set(some.ids) == set(ids[:2])

    unknown = Sent()  # broker unreachable: nothing is sent, nothing is marked
    assert run(sessions, unknown, backlog=None).requeued == 0
    assert ledger.job_row(ids[2]).enqueued_at != NOW


def test_room_tops_up_a_short_queue_and_refills_what_is_missing() -> None:
    cap = settings(100)
    assert requeue_room(cap, 0, 0) == 100  # an empty queue is topped up to the cap
    assert requeue_room(cap, 99, 0) == 1
    assert requeue_room(cap, 500, 480) == 0  # a long queue of slow messages: no flood
    assert requeue_room(cap, 500, 800) == 300  # 300 stale jobs have no message: re-send
    assert requeue_room(cap, 0, 5000) == REQUEUE_LIMIT  # a wiped Redis, a bounded sweep
    assert requeue_room(cap, None, 800) == 0  # broker unknown: nothing


def test_a_failed_publish_is_retried_by_a_later_sweep(sessions, ledger: Ledger) -> None:
    b = ledger.batch(total_jobs=1)
    job = ledger.job(b, enqueued_at=ago(60))
    down = Sent(fail=True)
    counts = run(sessions, down)
    assert counts.publish_failed == 1 and counts.published == 0
    # enqueued_at was bumped: the next sweeps leave it alone until requeue_after has passed
    assert run(sessions, Sent()).requeued == 0
    later = Sent()
    sweep_once(
        sessions, settings(), NOW + timedelta(seconds=REQUEUE_S + 1), backlog=0, publish=later
    )
    assert later.ids == [job]


# ---- b) expired leases, c) orphaned reservations -------------------------------------------


def test_reclaims_expired_leases_and_books_their_reservations_as_spent_unknown(
    sessions, ledger: Ledger
) -> None:
    b = ledger.batch(total_jobs=2)
    dead = ledger.job(b, "running", attempts=2, lease_until=ago(1), enqueued_at=ago(30))
    alive = ledger.job(b, "running", attempts=1, lease_until=NOW + timedelta(seconds=5))
    ledger.started_attempt(dead, 2, ago(11), batch_id=b, tokens=100, usd=Decimal("0.01"))
    ledger.started_attempt(alive, 1, ago(5), batch_id=b, tokens=50, usd=Decimal("0.02"))
    assert ledger.reserved() == (150 * 2, Decimal("0.03") * 2)  # day + month windows

    sent = Sent()
    counts = run(sessions, sent)

    assert counts.reclaimed == 1 and counts.lost_attempts == 1 and counts.released == 0
    assert sent.ids == [dead]
    row = ledger.job_row(dead)
    assert (row.state, row.lease_until, row.attempts) == ("queued", None, 2)
    attempt = ledger.attempt_row(dead, 2)
    assert (attempt.outcome, attempt.error_kind) == ("lost", "lost")
    assert ledger.job_row(alive).state == "running"
    assert ledger.attempt_row(alive, 1).outcome == "started"
    assert ledger.reserved() == (50 * 2, Decimal("0.02") * 2)  # only the live call's reservation
    # issue 19: the lost call may have been billed: its worst case counts as spent, not released
    assert ledger.spent() == (100 * 2, Decimal("0.01") * 2)

    again = run(sessions, Sent())  # idempotent: nothing left to reclaim or book
    assert (again.reclaimed, again.lost_attempts, again.released) == (0, 0, 0)
    assert ledger.reserved() == (50 * 2, Decimal("0.02") * 2)
    assert ledger.spent() == (100 * 2, Decimal("0.01") * 2)


def test_books_stale_reservations_of_jobs_that_moved_on(sessions, ledger: Ledger) -> None:
    b = ledger.batch(total_jobs=3)
    # attempt 1 died unnoticed; the job was claimed again (attempt 2) and finished
    done = ledger.job(b, "succeeded", attempts=2, finished_at=ago(1))
    ledger.started_attempt(done, 1, ago(LEASE_S + 5), batch_id=b, tokens=10)
    # a long call whose job is still running it under a live lease: never touched
    long_call = ledger.job(b, "running", attempts=1, lease_until=NOW + timedelta(seconds=60))
    ledger.started_attempt(long_call, 1, ago(LEASE_S + 30), batch_id=b, tokens=20)
    # a superseded attempt, but too recent to call lost yet
    recent = ledger.job(b, "running", attempts=3, lease_until=NOW + timedelta(seconds=9))
    ledger.started_attempt(recent, 2, ago(2), batch_id=b, tokens=40)

    counts = run(sessions, Sent())

    assert counts.released == 1
    assert ledger.attempt_row(done, 1).outcome == "lost"
    assert ledger.attempt_row(long_call, 1).outcome == "started"
    assert ledger.attempt_row(recent, 2).outcome == "started"
    assert ledger.reserved()[0] == (20 + 40) * 2
    assert ledger.spent()[0] == 10 * 2  # the lost call's worst case, as spent_unknown
    assert ledger.job_row(done).state == "succeeded"  # the job itself is left alone


# ---- d) batches, e) parked jobs -----------------------------------------------------------


def test_finishes_batches_whose_jobs_are_all_terminal(sessions, ledger: Ledger) -> None:
    finished = ledger.batch(total_jobs=3)
    for state in ("succeeded", "failed", "cancelled"):
        ledger.job(finished, state)
    open_ = ledger.batch(total_jobs=2)
    ledger.job(open_, "succeeded")
    ledger.job(open_, "quota_exceeded")  # parked is not finished
    filling = ledger.batch(total_jobs=2)  # one job of two written so far
    ledger.job(filling, "succeeded")

    counts = run(sessions, Sent())

    assert counts.batches_done == 1
    row = ledger.batch_row(finished)
    assert (row.state, row.finished_at) == ("done", NOW)
    assert ledger.batch_row(open_).state == "active"
    assert ledger.batch_row(filling).state == "active"
    assert run(sessions, Sent()).batches_done == 0


def test_resumes_parked_jobs_once_their_window_reset(sessions, ledger: Ledger) -> None:
    b = ledger.batch(total_jobs=3)
    reset = ledger.job(b, "quota_exceeded", not_before=ago(1), enqueued_at=ago(3600))
    waiting = ledger.job(b, "quota_exceeded", not_before=NOW + timedelta(hours=1))
    by_hand = ledger.job(b, "quota_exceeded", not_before=None)  # batch max cost: llmq resume

    sent = Sent()
    counts = run(sessions, sent)

    assert counts.resumed == 1
    assert sent.ids == [reset]  # re-sent in the same sweep, by step a
    row = ledger.job_row(reset)
    assert (row.state, row.not_before, row.enqueued_at) == ("queued", None, NOW)
    assert ledger.job_row(waiting).state == "quota_exceeded"
    assert ledger.job_row(by_hand).state == "quota_exceeded"


# ---- several sweepers ---------------------------------------------------------------------


def test_a_sweep_skips_while_another_holds_the_lock(sessions, ledger: Ledger) -> None:
    b = ledger.batch(total_jobs=1)
    ledger.job(b, enqueued_at=ago(60))
    with session_scope(sessions) as other:
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK_KEY})
        sent = Sent()
        counts = run(sessions, sent)
        assert counts.skipped and sent.ids == []
    assert run(sessions, Sent()).requeued == 1


@pytest.mark.parametrize("sweepers", [8])
def test_concurrent_sweeps_act_on_each_row_once(sessions, ledger: Ledger, sweepers: int) -> None:
    b = ledger.batch(total_jobs=40)
    queued = {ledger.job(b, enqueued_at=ago(60)) for _ in range(20)}
    dead = set()
    for _ in range(20):
        job = ledger.job(b, "running", attempts=1, lease_until=ago(1))
        ledger.started_attempt(job, 1, ago(20), batch_id=b, tokens=7, usd=Decimal("0.001"))
        dead.add(job)
    sent = Sent()
    results: list[SweepCounts] = []
    start = threading.Barrier(sweepers)

    def one() -> None:
        start.wait()
        results.append(run(sessions, sent))

    threads = [threading.Thread(target=one) for _ in range(sweepers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert len(results) == sweepers
    assert sorted(sent.ids) == sorted(queued | dead)  # each job sent exactly once
    assert sum(r.reclaimed for r in results) == 20
    assert sum(r.lost_attempts + r.released for r in results) == 20
    assert ledger.reserved() == (0, Decimal(0))  # moved exactly once, never below zero
    assert ledger.spent() == (7 * 20 * 2, Decimal("0.001") * 20 * 2)  # booked exactly once


def test_the_same_sweep_runs_on_sqlite(tmp_path) -> None:
    """Embedded mode: no advisory lock, FOR UPDATE compiles away, the CTEs still hold."""
    from core.ledger.db import make_engine, make_sessionmaker
    from core.ledger.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    ledger = Ledger(sessions)
    b = ledger.batch(total_jobs=3)
    old, older = ledger.job(b, enqueued_at=ago(50)), ledger.job(b, enqueued_at=ago(90))
    dead = ledger.job(b, "running", attempts=1, lease_until=ago(1))
    ledger.started_attempt(dead, 1, ago(20), batch_id=b, tokens=5, usd=Decimal("0.001"))

    sent = Sent()
    counts = run(sessions, sent, backlog=0, cap=1)
    engine.dispose()

    assert (counts.reclaimed, counts.lost_attempts, counts.requeued) == (1, 1, 2)
    assert sent.ids[0] == dead and set(sent.ids) == {dead, older, old}
    assert ledger.reserved() == (0, Decimal(0))
