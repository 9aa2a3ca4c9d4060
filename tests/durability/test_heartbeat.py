"""Worker heartbeats (issue 20, item 11) against a real Postgres ledger: a beat renews exactly
the running jobs its worker holds and is working on, a silent worker's jobs are reclaimed by the sweeper after
`heartbeat_missed` beats, a live worker's call is never stolen however long it runs, and the
beating thread, the claim's lease choice and the pruning of dead workers' rows."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.ledger import heartbeat_repo, jobs_repo
from core.ledger.db import session_scope
from core.ledger.models import Worker
from schemas.settings import Settings
from tests.durability.ledger_rows import NOW, Ledger
from tests.durability.test_sweeper import Sent
from workers.heartbeat import Heartbeat
from workers.sweeper import WORKER_FORGET_S, sweep_once

HB = Settings(heartbeat_s=5.0, heartbeat_missed=3, sweep_interval_s=5.0)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _claim(sessions: sessionmaker[Session], job_id: uuid.UUID, now: datetime, hb: Heartbeat, stack):  # type: ignore[no-untyped-def]
    """Claim `job_id` for `hb`'s worker and hold it (as the task does) until `stack` closes."""
    stack.enter_context(hb.holding(job_id))
    with session_scope(sessions) as s:
        claim = jobs_repo.claim_job(s, job_id, now, hb.lease_s, hb.worker_id)
    assert claim is not None
    return claim


def _sweep(sessions: sessionmaker[Session], now: datetime, sent: Sent):
    return sweep_once(sessions, HB, now, backlog=0, publish=sent)


def _workers(sessions: sessionmaker[Session]) -> int:
    with session_scope(sessions) as s:
        return int(s.execute(select(func.count()).select_from(Worker)).scalar_one())


def test_settings_from_env_and_the_lease_they_give() -> None:
    from schemas.settings import load_settings

    s = load_settings({"LLMQ_HEARTBEAT_S": "2", "LLMQ_HEARTBEAT_MISSED": "4"})
    assert (s.heartbeat_s, s.heartbeat_missed, s.heartbeat_lease_s) == (2.0, 4, 8.0)
    assert Settings().heartbeat_lease_s == 15.0  # 3 beats of 5 s
    # the default sweep comes often enough that a dead worker's jobs return within 30 s
    assert Settings().heartbeat_lease_s + Settings().sweep_interval_s <= 30


def test_a_beat_renews_only_the_running_jobs_its_worker_holds(sessions, ledger: Ledger) -> None:
    clock = FakeClock(NOW)
    me, other = Heartbeat(sessions, HB, clock=clock), Heartbeat(sessions, HB, clock=clock)
    me.beat_once()
    other.beat_once()
    b = ledger.batch(total_jobs=4)
    mine, theirs, queued = (ledger.job(b) for _ in range(3))
    stack = ExitStack()
    _claim(sessions, mine, NOW, me, stack)
    _claim(sessions, theirs, NOW, other, stack)
    stack.enter_context(me.holding(theirs))  # holding someone else's job renews nothing
    stack.enter_context(me.holding(queued))
    nobody = ledger.job(b, state="running", attempts=1, lease_until=NOW + timedelta(seconds=300))
    assert ledger.job_row(mine).worker_id == me.worker_id
    assert ledger.job_row(mine).lease_until == NOW + timedelta(seconds=15)

    clock.now = NOW + timedelta(seconds=5)
    assert me.beat_once() == 1
    assert ledger.job_row(mine).lease_until == clock.now + timedelta(seconds=15)
    assert ledger.job_row(theirs).lease_until == NOW + timedelta(seconds=15)
    assert ledger.job_row(queued).lease_until is None
    assert ledger.job_row(nobody).lease_until == NOW + timedelta(seconds=300)
    with session_scope(sessions) as s:
        row = s.get(Worker, me.worker_id)
        assert row is not None and row.last_heartbeat == clock.now and row.pid > 0
    stack.close()


def test_a_job_its_run_let_go_of_is_no_longer_renewed(sessions, ledger: Ledger) -> None:
    """A run that ended on an error (Postgres restarting) may leave its job `running` under
    this worker: the beat stops renewing it, and the sweeper reclaims it 3 beats later."""
    clock = FakeClock(NOW)
    hb = Heartbeat(sessions, HB, clock=clock)
    hb.beat_once()
    b = ledger.batch(total_jobs=1)
    job = ledger.job(b)
    with ExitStack() as stack:
        _claim(sessions, job, NOW, hb, stack)
        assert hb.holds(job)
        clock.now = NOW + timedelta(seconds=5)
        assert hb.beat_once() == 1
    assert not hb.holds(job)  # the run is over; the job stayed `running`
    clock.now = NOW + timedelta(seconds=10)
    assert hb.beat_once() == 0
    assert ledger.job_row(job).lease_until == NOW + timedelta(seconds=20)
    sent = Sent()
    assert _sweep(sessions, NOW + timedelta(seconds=21), sent).reclaimed == 1
    assert sent.ids == [job]


def test_two_runs_of_one_job_hold_it_until_both_end(sessions) -> None:
    hb = Heartbeat(sessions, HB)
    job = uuid.uuid4()
    with hb.holding(job):
        with hb.holding(job):  # a duplicate message running at once
            assert hb.holds(job)
        assert hb.holds(job)
    assert not hb.holds(job)


def test_a_silent_workers_jobs_are_reclaimed_after_three_beats(sessions, ledger: Ledger) -> None:
    clock = FakeClock(NOW)
    dead = Heartbeat(sessions, HB, clock=clock)
    dead.beat_once()
    b = ledger.batch(total_jobs=1)
    job = ledger.job(b)
    running = ExitStack()  # held until the end: killed mid-run
    claim = _claim(sessions, job, NOW, dead, running)
    ledger.started_attempt(job, claim.attempt_no, NOW, batch_id=b)
    clock.now = NOW + timedelta(seconds=4)
    dead.beat_once()  # the last beat; then SIGKILL

    sent = Sent()
    # within 3 beats of the last one the job is still leased to the (maybe slow) worker
    assert _sweep(sessions, clock.now + timedelta(seconds=14), sent).reclaimed == 0
    counts = _sweep(sessions, clock.now + timedelta(seconds=15.5), sent)
    assert counts.reclaimed == 1 and counts.lost_attempts == 1 and sent.ids == [job]
    assert ledger.job_row(job).state == "queued"
    assert ledger.attempt_row(job, claim.attempt_no).outcome == "lost"
    assert ledger.reserved() == (0, 0)
    running.close()


def test_a_live_call_longer_than_the_old_lease_is_never_stolen(sessions, ledger: Ledger) -> None:
    clock = FakeClock(NOW)
    live = Heartbeat(sessions, HB, clock=clock)
    live.beat_once()
    b = ledger.batch(total_jobs=1)
    job = ledger.job(b)
    in_flight = ExitStack()  # the call is in flight throughout
    claim = _claim(sessions, job, NOW, live, in_flight)
    sent = Sent()
    for second in range(5, 606, 5):  # a 10-minute call, twice the old 300 s lease
        clock.now = NOW + timedelta(seconds=second)
        live.beat_once()
        assert _sweep(sessions, clock.now + timedelta(seconds=4.9), sent).reclaimed == 0
    assert sent.ids == []
    row = ledger.job_row(job)
    assert row.state == "running" and row.attempts == claim.attempt_no
    with session_scope(sessions) as s:  # nobody else can claim it either
        assert jobs_repo.claim_job(s, job, clock.now, 300.0) is None
    in_flight.close()


def test_a_reclaimed_job_is_not_renewed_by_its_old_worker(sessions, ledger: Ledger) -> None:
    clock = FakeClock(NOW)
    slow, fresh = Heartbeat(sessions, HB, clock=clock), Heartbeat(sessions, HB, clock=clock)
    slow.beat_once()
    b = ledger.batch(total_jobs=1)
    job = ledger.job(b)
    stalled = ExitStack()
    _claim(sessions, job, NOW, slow, stalled)
    later = NOW + timedelta(seconds=60)  # slow stalled past its lease; the sweep reclaimed
    assert _sweep(sessions, later, Sent()).reclaimed == 1
    _claim(sessions, job, later, fresh, ExitStack())
    stalled.close()
    clock.now = later + timedelta(seconds=1)
    assert slow.beat_once() == 0  # it woke up: renews nothing it no longer holds
    row = ledger.job_row(job)
    assert row.worker_id == fresh.worker_id
    assert row.lease_until == later + timedelta(seconds=15)


def test_the_thread_beats_and_stop_deletes_the_row(sessions, ledger: Ledger) -> None:
    hb = Heartbeat(sessions, Settings(heartbeat_s=0.05, heartbeat_missed=3))
    assert not hb.alive()
    hb.start()
    try:
        deadline = time.monotonic() + 10
        while hb.beats < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hb.beats >= 4 and hb.alive()
        assert _workers(sessions) == 1
    finally:
        hb.stop()
    assert not hb.alive() and _workers(sessions) == 0


def test_a_pruned_worker_registers_again(sessions, ledger: Ledger) -> None:
    clock = FakeClock(NOW)
    hb = Heartbeat(sessions, HB, clock=clock)
    hb.beat_once()
    with session_scope(sessions) as s:
        assert heartbeat_repo.prune(s, NOW + timedelta(seconds=1)) == 1
    clock.now = NOW + timedelta(seconds=5)
    assert hb.beat_once() == 0
    assert _workers(sessions) == 1


def test_the_sweeper_prunes_long_dead_workers(sessions, ledger: Ledger) -> None:
    clock = FakeClock(NOW - timedelta(seconds=WORKER_FORGET_S + 10))
    Heartbeat(sessions, HB, clock=clock).beat_once()
    clock.now = NOW - timedelta(seconds=60)
    Heartbeat(sessions, HB, clock=clock).beat_once()  # dead a minute: kept (for people)
    counts = _sweep(sessions, NOW, Sent())
    assert counts.workers_pruned == 1 and _workers(sessions) == 1


def test_a_claim_uses_the_short_lease_only_while_the_heartbeat_runs_and_holds_it(
    sessions,
) -> None:  # type: ignore[no-untyped-def]
    from workers.runtime import Runtime

    settings = Settings(lease_s=300.0, heartbeat_s=0.05, heartbeat_missed=3)
    rt = Runtime.__new__(Runtime)  # only settings and heartbeat matter here
    rt.settings, rt.heartbeat = settings, None
    job = uuid.uuid4()
    assert rt.claim_lease(job) == (300.0, None)
    hb = Heartbeat(sessions, settings)
    rt.heartbeat = hb
    with hb.holding(job):
        assert rt.claim_lease(job) == (300.0, None)  # not started: nothing would renew
    hb.start()
    try:
        assert rt.claim_lease(job) == (300.0, None)  # not held: nothing would renew it
        with hb.holding(job):
            lease_s, holder = rt.claim_lease(job)
            assert holder == hb.worker_id and abs(lease_s - 0.15) < 1e-9
    finally:
        hb.stop()
    with hb.holding(job):
        assert rt.claim_lease(job) == (300.0, None)
