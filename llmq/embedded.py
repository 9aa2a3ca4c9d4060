"""The embedded runtime: llmq's production pipeline on in-process parts (`llmq demo`, `llmq run`).

Owns: assembling one process that is producer, broker, worker and beat at once:
  * ledger: SQLite (default `.llmq/ledger.db`), migrated with the same Alembic migrations;
  * broker: kombu's `memory://` transport (its queues are shared by every connection in the
    process, so the producer's `enqueue_job_ids` and the worker meet there);
  * worker: a real Celery `WorkController` with the threads pool, in a thread, consuming the
    same queues and running the same tasks (`llmq.process_job`, `llmq.sweep`); countdown
    retries wait on Celery's own ETA timer, exactly as on Redis;
  * beat: a timer thread that sends `llmq.sweep` with beat's own schedule entry;
  * health: `MemoryHealthStore` (one process, nothing to share);
  * providers: the real adapters, pointed at the provider simulator in a thread when asked to,
    or when no API key is configured for any provider that needs one.
Must not: decide anything about a job (the pipeline does), write the ledger (the repos do), or
grow a second code path: whatever works here and not on Postgres + Redis is a bug.

Limits: Celery's `app` is process-global, so there is one embedded runtime per process at a
time, and starting it switches that app to `memory://` for the rest of the process (the CLI
exits afterwards). The ledger file outlives the process: `llmq status`/`results` read it with
LLMQ_DATABASE_URL=sqlite:///<path>.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery.worker import WorkController
from pydantic import SecretStr
from sqlalchemy import Engine, event

from schemas.config import LLMConfig
from schemas.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

    from core.ledger.usage_repo import UsageRow
    from producer.client import Client
    from simulator.config import SimConfig
    from simulator.server import RunningSimulator
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_LEDGER = Path(".llmq") / "ledger.db"
BROKER_URL = "memory://localhost/"
QUEUES = ("llmq", "llmq.control")  # workers/celeryconfig.py: jobs, then periodic tasks
# The memory transport has no blocking get: an idle consumer sleeps this long (seconds)
# between polls. kombu's default (1 s) would stall every free worker slot for up to a second.
POLL_S = 0.005
SIM_KEY = "sk-llmq-simulator"  # the simulator accepts any key not starting with "bad"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


@dataclass
class Embedded:
    """A running embedded runtime. Use `start_embedded(...)` as a context manager."""

    settings: Settings
    config: LLMConfig  # as the workers use it (pointed at the simulator if one runs)
    ledger_path: Path
    runtime: Runtime
    simulator: RunningSimulator | None
    _worker: _Worker
    _worker_thread: threading.Thread
    _beat: _Beat
    _previous_runtime: Runtime | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def database_url(self) -> str:
        return self.settings.database_url

    def client(self) -> Client:
        """A producer `Client` on this runtime's ledger and in-process broker."""
        from llmq.capabilities import for_config
        from producer.client import Client

        caps = for_config(self.config)  # submit rejects lines no deployment can serve
        return Client(self.database_url, BROKER_URL, self.config, env={}, capabilities=caps)

    def usage(self, since: datetime) -> list[UsageRow]:
        """Attempts since `since`, grouped by provider and model (read-only)."""
        from core.ledger.db import session_scope
        from core.ledger.usage_repo import usage_report

        with session_scope(self.runtime.sessions) as session:
            return usage_report(session, since, by=("provider", "model"))

    def simulator_stats(self) -> dict[str, Any] | None:
        """The simulator's own counts (`GET /_sim/stats`), or None with real providers."""
        return self.simulator.stats() if self.simulator is not None else None

    def stop(self) -> None:
        """Stop beat, the worker, the simulator; release pools (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        from workers.runtime import set_runtime

        self._beat.stop()
        _stop_worker(self._worker, self._worker_thread)
        set_runtime(self._previous_runtime)
        self.runtime.close()
        if self.simulator is not None:
            self.simulator.stop()

    def __enter__(self) -> Embedded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_embedded(
    config: LLMConfig,
    *,
    ledger: Path | str = DEFAULT_LEDGER,
    concurrency: int = 32,
    simulate: bool | None = None,
    sim_config: SimConfig | None = None,
    sweep_interval_s: float = 1.0,
) -> Embedded:
    """Migrate the ledger, start the simulator (if any), the worker and the sweep timer.

    Args:
        config: the llm_config to run with (real provider endpoints and keys).
        ledger: the SQLite file (created, or migrated to head if it exists).
        concurrency: worker threads, i.e. provider calls in flight at once.
        simulate: True = provider simulator; False = real providers; None = the simulator
            only when `needs_simulator(config)`.
        sim_config: the simulator's behaviour (None = fast, no injected failures).
        sweep_interval_s: seconds between sweeps (lost messages, parked jobs, batch ends).
    """
    from workers.routing.health import MemoryHealthStore
    from workers.runtime import build_runtime, set_runtime

    ledger_path = Path(ledger)
    settings = Settings(
        database_url=prepare_ledger(ledger_path),
        broker_url=BROKER_URL,
        worker_concurrency=concurrency,
        sweep_interval_s=sweep_interval_s,
        # Nothing is lost between a producer and a worker in one process, so the sweeper
        # re-sends only what a queue shorter than the stale count proves missing (jobs an
        # interrupted run left queued), never "top-up" duplicates behind a long batch.
        requeue_backlog=0,
        embedded=True,
    )
    with ExitStack() as undo:  # a failed start stops what did start, in reverse order
        simulator = None
        if simulate or (simulate is None and needs_simulator(config)):
            simulator = _start_simulator(sim_config)
            undo.callback(simulator.stop)
            config = point_at_simulator(config, simulator.url)
        app = configure_app(concurrency)
        health = MemoryHealthStore()
        runtime = build_runtime(settings, config, health=health, concurrency=concurrency)
        undo.callback(runtime.close)
        serialize_sqlite(runtime.engine)
        previous = set_runtime(runtime)
        undo.callback(set_runtime, previous)
        worker, thread = _start_worker(app, concurrency)
        beat = _Beat(app, settings)
        beat.start()
        undo.pop_all()  # started: from here on Embedded.stop() owns all of it
    return Embedded(
        settings, config, ledger_path, runtime, simulator, worker, thread, beat, previous
    )


# --- ledger and providers -------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def prepare_ledger(path: Path) -> str:
    """Create `path`'s folder and migrate the SQLite ledger to head; returns its URL."""
    from core.ledger.migrate import upgrade

    path.parent.mkdir(parents=True, exist_ok=True)
    url = sqlite_url(path)
    upgrade(url)
    return url


def serialize_sqlite(engine: Engine) -> None:
    """Tune `engine` (SQLite, used by this process only) for many worker threads on one file.

    SQLite has one writer at a time, and a waiting connection's busy handler sleeps in growing
    steps (up to 100 ms each), so 32 threads contending for the file spend most of their time
    asleep (measured: 500 jobs took 16 s). Handing the database from thread to thread at
    connection checkout/checkin wakes the next one the moment it is free (7 s).
    `synchronous=NORMAL` is SQLite's recommended setting in WAL mode: a commit no longer
    waits for an fsync (an OS crash may lose the last commits, never corrupt the file).
    """
    baton = _ConnectionBaton()

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "checkout", lambda *_: baton.take())
    event.listen(engine, "checkin", lambda *_: baton.give())


class _ConnectionBaton:
    """One thread at a time holds connections; re-entrant for that thread (a second session
    opened while holding one must not deadlock), and releasable from any thread (a connection
    garbage-collected elsewhere is checked in there)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._held = 0

    def take(self) -> None:
        me = threading.get_ident()
        with self._cond:
            while self._owner not in (None, me):
                self._cond.wait()
            self._owner = me
            self._held += 1

    def give(self) -> None:
        with self._cond:
            self._held -= 1
            if self._held <= 0:
                self._owner, self._held = None, 0
                self._cond.notify()


def needs_simulator(config: LLMConfig) -> bool:
    """True when no deployment of a key-requiring provider has a key.

    Keyless providers (local servers) do not count: the built-in default config lists one at
    localhost:8000 that usually is not running. Pass `simulate=False` to use them anyway.
    """
    from workers.providers import REGISTRY, has_credentials

    return not any(
        REGISTRY[m.provider].requires_key and has_credentials(m, config) for m in config.models
    )


def point_at_simulator(config: LLMConfig, sim_url: str) -> LLMConfig:
    """A copy of `config` whose every provider and deployment calls the simulator at `sim_url`.

    Real keys are replaced by a simulator key, so none can leave the process.
    """
    from simulator.providers import api_bases, endpoint_for
    from workers.providers import REGISTRY

    bases = api_bases()
    providers = {}
    for provider in REGISTRY:
        current = config.provider_settings(provider)
        # An adapter may speak several dialects (local: OpenAI or Ollama); each has a route.
        route = bases[endpoint_for(provider, current)]
        providers[provider] = current.model_copy(
            update={
                "api_base": sim_url + route,
                "api_key": SecretStr(SIM_KEY),
                "organization": None,
                "headers": {},
            }
        )
    models = [m.model_copy(update={"api_url": None, "api_key": None}) for m in config.models]
    return config.model_copy(update={"providers": providers, "models": models})


def _start_simulator(sim_config: SimConfig | None) -> RunningSimulator:
    from simulator.config import ProviderBehaviour, SimConfig
    from simulator.server import start_in_thread

    if sim_config is None:
        sim_config = SimConfig(default=ProviderBehaviour(latency_ms=25, latency_jitter_ms=15))
    return start_in_thread(sim_config)


# --- Celery: the app, the worker thread, the beat thread ------------------------------------


def configure_app(concurrency: int) -> Celery:
    """Switch the process's Celery app to the in-process broker; returns the app.

    Must run before anything connects (the app caches its broker connection pool).
    """
    from workers.app import app

    if app._pool is not None and app.conf.broker_url != BROKER_URL:
        raise RuntimeError("the Celery app is already connected to another broker")
    app.conf.update(
        broker_url=BROKER_URL,
        broker_transport_options={"polling_interval": POLL_S},
        worker_concurrency=concurrency,
        # One process: no Flower to feed, and nothing to hand over at shutdown (we stop only
        # once every job is settled, or on Ctrl-C, when the ledger keeps the rest).
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_soft_shutdown_timeout=0.0,
        worker_enable_soft_shutdown_on_idle=False,
    )
    app.finalize()
    with app.connection_for_write() as conn:
        # Messages a previous embedded run in this process left behind point at another
        # ledger's jobs; they would only be no-ops, but start clean.
        for queue in QUEUES:
            conn.default_channel.queue_purge(queue)
    return app


class _Worker(WorkController):
    """A WorkController that reports when its consumer is up (as celery's test worker does)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


def _start_worker(app: Celery, concurrency: int) -> tuple[_Worker, threading.Thread]:
    worker = _Worker(
        app=app,
        hostname="embedded@llmq",
        pool_cls="threads",
        concurrency=concurrency,
        loglevel=logging.INFO,
        ready_callback=None,
        # One worker in one process: no peers to sync or gossip with, no broker heartbeats.
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    thread = threading.Thread(target=worker.start, name="llmq-worker", daemon=True)
    thread.start()
    if not worker.ready.wait(START_TIMEOUT_S):
        _stop_worker(worker, thread)
        raise RuntimeError(f"the embedded worker did not start within {START_TIMEOUT_S:.0f} s")
    return worker, thread


def _stop_worker(worker: _Worker, thread: threading.Thread) -> None:
    """Warm stop: running tasks finish, the pool's threads are joined."""
    from celery.worker import state

    state.should_stop = 0  # what a SIGTERM handler sets; the consumer loop checks it
    try:
        worker.stop(in_sighandler=False)
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            log.warning("embedded worker still running after %.0f s", STOP_TIMEOUT_S)
    finally:
        state.should_stop = None


class _Beat(threading.Thread):
    """celery beat's job in one process: send `llmq.sweep` on beat's own schedule entry."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        super().__init__(name="llmq-beat", daemon=True)
        from workers.beat import sweep_entries

        self.app = app
        self.entries = list(sweep_entries(settings).values())
        self._stop_event = threading.Event()

    def run(self) -> None:
        interval = min(float(e["schedule"]) for e in self.entries)
        while not self._stop_event.wait(interval):
            for entry in self.entries:
                try:
                    self.app.send_task(entry["task"], **entry.get("options", {}))
                except Exception as exc:  # noqa: BLE001 - a missed sweep is retried next tick
                    log.warning("could not send %s: %s", entry["task"], exc)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(STOP_TIMEOUT_S)
