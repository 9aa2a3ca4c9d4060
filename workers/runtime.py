"""The per-process worker runtime: everything a job needs that is built once, not per job.

Owns: `Runtime` (settings, config, engine + sessionmaker, one pooled httpx client, an adapter,
a price and a has-credentials flag per deployment id, the health store) and the process-wide
holder behind `get_runtime()` / `set_runtime()`. Must not: decide anything about a job, or be
built at import time (the holder fills on first use, or eagerly at worker start).

Why a process-wide holder: Celery calls tasks with nothing but their arguments, so the task
needs one place to find the process's pools. It is built once under a lock (thread pool: many
tasks may arrive at once), dropped in a forked child (prefork: sockets must not be shared across
fork), and replaced explicitly by tests and the embedded mode with `set_runtime`.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.ledger.db import make_engine, make_sessionmaker
from schemas.config import LLMConfig, LLMModelConfig
from schemas.settings import Settings, load_settings
from workers.routing.select import route_deployment_ids

if TYPE_CHECKING:
    from workers.heartbeat import Heartbeat
    from workers.pricing import Price
    from workers.providers.base import ProviderAdapter
    from workers.routing.health import HealthStore

log = logging.getLogger(__name__)

MAX_DB_POOL = 12  # per process
# Burst connections on top of the pool: small, so 2 workers x 48 threads (2 x (12 + 4)) stay
# far inside Postgres's default max_connections of 100 (issue 10); a thread that finds the
# pool busy waits for one of the millisecond-long transactions to end instead.
DB_MAX_OVERFLOW = 4


@dataclass
class Runtime:
    """What one worker process shares across all its jobs and threads (all thread-safe)."""

    settings: Settings
    config: LLMConfig
    engine: Engine
    sessions: sessionmaker[Session]
    client: httpx.Client
    adapters: Mapping[str, ProviderAdapter]  # deployment id -> adapter (credentialed only)
    has_key: Mapping[str, bool]  # deployment id -> credentials present
    prices: Mapping[str, Price | None]  # deployment id -> price at start (None = unknown)
    health: HealthStore
    deployments: Mapping[str, LLMModelConfig] = field(default_factory=dict)
    heartbeat: Heartbeat | None = None  # the worker process's (workers/heartbeat.py)
    # issue 18: deployment id -> its batch lane's price, for deployments with a batch API only
    batch_prices: Mapping[str, Price | None] = field(default_factory=dict)
    # chunks (issue 21): provider calls in flight or answered-but-unwritten per process, as
    # many as the worker has threads (workers/chunk/calls.py)
    calls_in_flight: int = 8
    _route_ids: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    def route_deployment_ids(self, model_name: str) -> tuple[str, ...]:
        """Deployment ids a job for `model_name` may use: its own, then its fallbacks'.

        Memoised per name; a racing first computation writes the same value twice, harmlessly.
        """
        ids = self._route_ids.get(model_name)
        if ids is None:
            ids = route_deployment_ids(self.config, model_name)
            self._route_ids[model_name] = ids
        return ids

    def claim_lease(self, job_id: uuid.UUID) -> tuple[float, uuid.UUID | None]:
        """(lease seconds, holder) for claiming `job_id`: the short heartbeat lease and this
        process's worker id while its heartbeat thread runs and holds the job (the task wraps
        the run in `heartbeat.holding`), else the full `settings.lease_s` and no holder
        (nothing would renew a short lease)."""
        hb = self.heartbeat
        if hb is not None and hb.alive() and hb.holds(job_id):
            return hb.lease_s, hb.worker_id
        return self.settings.lease_s, None

    def close(self) -> None:
        """Release the pools (tests, embedded shutdown)."""
        self.client.close()
        self.engine.dispose()


def build_runtime(
    settings: Settings,
    config: LLMConfig | None = None,
    *,
    health: HealthStore | None = None,
    concurrency: int | None = None,
    now: datetime | None = None,
) -> Runtime:
    """Build every per-process resource from settings and config.

    Args:
        settings: process settings (database, Redis, lease).
        config: the llm_config; None = load it (LLMQ_CONFIG / ./llm_config.yaml / default).
        health: a health store; None = Redis at settings.state_redis_url, or an in-memory
            store when `settings.embedded` (one process, nothing to share).
        concurrency: tasks in flight at once; sizes the HTTP and database pools.
            None = settings.worker_concurrency.
        now: the time prices are looked up for (None = now, UTC).
    """
    from workers.lanes.prices import lane_prices
    from workers.pricing import price_for
    from workers.providers import build_adapter, has_credentials
    from workers.providers.config import load_config
    from workers.providers.http import make_client

    if config is None:
        config = load_config(settings.config_path)
    slots = concurrency or settings.worker_concurrency
    when = now or datetime.now(UTC)
    timeout_s = max([p.timeout_s for p in config.providers.values()] or [120.0])
    client = make_client(max_connections=max(slots, 4), timeout_s=timeout_s)
    deployments = {m.deployment_id: m for m in config.models}
    has_key = {dep_id: has_credentials(m, config) for dep_id, m in deployments.items()}
    adapters = {
        dep_id: build_adapter(m, config, client)
        for dep_id, m in deployments.items()
        if has_key[dep_id]
    }
    prices = {dep_id: price_for(m, when) for dep_id, m in deployments.items()}
    batch_prices = lane_prices(config, deployments, prices, when)
    engine = make_engine(
        settings.database_url, pool_size=db_pool_size(slots), max_overflow=DB_MAX_OVERFLOW
    )
    return Runtime(
        settings=settings,
        config=config,
        engine=engine,
        sessions=make_sessionmaker(engine),
        client=client,
        adapters=adapters,
        has_key=has_key,
        prices=prices,
        health=health or _health_store(settings),
        deployments=deployments,
        batch_prices=batch_prices,
        calls_in_flight=slots,
    )


def db_pool_size(threads: int) -> int:
    """Postgres connections kept per process (DB_MAX_OVERFLOW more may open under bursts).

    A thread holds a connection only for a short transaction (milliseconds), never across the
    provider call (seconds), so a quarter of the threads is plenty; the cap keeps several
    48-thread workers well inside Postgres's default max_connections of 100.
    """
    return min(MAX_DB_POOL, max(4, threads // 4 + 1))


def _health_store(settings: Settings) -> HealthStore:
    from workers.routing.health import MemoryHealthStore, RedisHealthStore

    if settings.embedded:
        return MemoryHealthStore()
    import redis

    return RedisHealthStore(redis.Redis.from_url(settings.state_redis_url))


class _Holder:
    """The process's runtime, built at most once (double-checked under a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runtime: Runtime | None = None

    def forget(self) -> None:
        # After fork the child must not reuse the parent's sockets; it builds its own lazily.
        self.lock = threading.Lock()
        self.runtime = None


_holder = _Holder()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_holder.forget)


def get_runtime(concurrency: int | None = None) -> Runtime:
    """The process's runtime, built from the environment on first use.

    `concurrency` (the worker's thread count) sizes the pools when this call builds it;
    otherwise LLMQ_CONCURRENCY does.
    """
    rt = _holder.runtime
    if rt is not None:
        return rt
    with _holder.lock:
        if _holder.runtime is None:
            settings = load_settings(os.environ)
            _holder.runtime = build_runtime(settings, concurrency=concurrency)
            log.info(
                "runtime ready: %d deployments, %d with credentials",
                len(_holder.runtime.deployments),
                len(_holder.runtime.adapters),
            )
        return _holder.runtime


def set_runtime(rt: Runtime | None) -> Runtime | None:
    """Install `rt` as the process's runtime (tests, embedded mode); returns the previous one.

    The caller owns both: nothing is closed here.
    """
    with _holder.lock:
        previous, _holder.runtime = _holder.runtime, rt
    return previous
