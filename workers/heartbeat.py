"""The worker process's heartbeat: one background thread renewing every lease it holds.

Owns: `Heartbeat` (the process's worker id, its `workers` row, the ids of the jobs its threads
are running now, and the thread that beats every `settings.heartbeat_s`) and `start_heartbeat` /
`stop_heartbeat`, which the worker's start and shutdown hooks call (workers/tasks.py). Must not: write SQL (core/ledger/heartbeat_repo.py
does), touch a job's state (only its lease), or run more than one thread per process.

Why: a claim used to lease a job for `lease_s` (300 s), so a SIGKILLed worker's jobs waited
that long for the sweeper. With a heartbeat, a claim leases the job for only
`heartbeat_s * heartbeat_missed` (15 s by default) and records this process's worker id; each
beat renews all the jobs the process is running now in one UPDATE. Only those: the task wraps
each run in `holding(job_id)`, so a run that ended on an error (Postgres restarting) and left
its job `running` stops being renewed, and the sweeper reclaims it like a dead worker's. A killed worker stops beating, its leases run out
within `heartbeat_missed` beats, and the next sweep (every `sweep_interval_s`) re-queues
them. A live worker's call is never stolen, however long it runs: its leases keep moving.

Claims use the short lease only while the thread is alive and the job is held
(`Runtime.claim_lease`); otherwise (no heartbeat: tests calling `run_job`) the full `lease_s`.
A beat that fails (database restarting) is logged and retried at the next tick: the leases
have `heartbeat_missed - 1` beats of slack, and if they do run out, the attempt fence keeps
the late finish from counting twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from core.ledger import heartbeat_repo
from core.ledger.db import session_scope
from schemas.settings import Settings

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Heartbeat:
    """This process's worker identity and its beating thread.

    Args:
        sessions: the ledger's sessionmaker.
        settings: `heartbeat_s` (interval, seconds) and `heartbeat_missed` (beats of silence
            after which the worker's jobs go back to the queue).
        clock: the current time (UTC); tests pass their own.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.sessions = sessions
        self.interval_s = settings.heartbeat_s
        self.lease_s = settings.heartbeat_lease_s
        self.worker_id = uuid.uuid4()
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.clock = clock
        self.beats = 0  # successful beats, for tests and the log
        self._registered = False
        self._held: dict[uuid.UUID, int] = {}  # job id -> runs of it in flight here
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def alive(self) -> bool:
        """Whether the beating thread runs (claims may then use the short lease)."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    @contextmanager
    def holding(self, job_id: uuid.UUID) -> Iterator[None]:
        """While inside, this process works on `job_id`: beats renew its lease (if the claim
        made inside is this worker's)."""
        with self._held_lock:
            self._held[job_id] = self._held.get(job_id, 0) + 1
        try:
            yield
        finally:
            with self._held_lock:
                left = self._held.pop(job_id) - 1
                if left:
                    self._held[job_id] = left

    def holds(self, job_id: uuid.UUID) -> bool:
        """Whether a run of `job_id` is in flight in this process (inside `holding`)."""
        with self._held_lock:
            return job_id in self._held

    def beat_once(self) -> int:
        """Register if needed, then renew every running job this worker holds; returns the
        number renewed. Database errors propagate (the thread logs them and beats again)."""
        now = self.clock()
        lease_until = now + timedelta(seconds=self.lease_s)
        with self._held_lock:
            held = list(self._held)
        with session_scope(self.sessions) as s:
            if not self._registered:
                heartbeat_repo.register(s, self.worker_id, self.hostname, self.pid, now)
            renewed = heartbeat_repo.beat(s, self.worker_id, now, lease_until, held)
            if renewed < 0:  # our row was pruned while this process stalled: register again
                heartbeat_repo.register(s, self.worker_id, self.hostname, self.pid, now)
                renewed = heartbeat_repo.beat(s, self.worker_id, now, lease_until, held)
        self._registered = True
        self.beats += 1
        return renewed

    def start(self) -> Heartbeat:
        """Beat once now (best effort), then every `interval_s` from a daemon thread."""
        if self._thread is not None:
            return self
        self._beat_logged()
        self._thread = threading.Thread(target=self._run, name="llmq-heartbeat", daemon=True)
        self._thread.start()
        log.info(
            "heartbeat: worker %s (%s pid %d) beats every %gs; leases %gs",
            self.worker_id,
            self.hostname,
            self.pid,
            self.interval_s,
            self.lease_s,
        )
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop beating and delete the worker's row (best effort)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._registered:
            try:
                with session_scope(self.sessions) as s:
                    heartbeat_repo.forget(s, self.worker_id)
            except Exception as exc:  # noqa: BLE001 - the sweeper prunes the row later
                log.warning("heartbeat: could not delete worker row: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._beat_logged()

    def _beat_logged(self) -> None:
        try:
            renewed = self.beat_once()
        except Exception as exc:  # noqa: BLE001 - never let the thread die; beat again later
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("heartbeat failed (retrying in %gs): %s", self.interval_s, first)
            return
        log.debug("heartbeat: renewed %d leases", renewed)


def start_heartbeat(sessions: sessionmaker[Session], settings: Settings) -> Heartbeat:
    """Start this process's heartbeat (the worker's start hook calls it once)."""
    return Heartbeat(sessions, settings).start()


def stop_heartbeat(heartbeat: Heartbeat | None) -> None:
    """Stop it at shutdown (None = none was started)."""
    if heartbeat is not None:
        heartbeat.stop()
