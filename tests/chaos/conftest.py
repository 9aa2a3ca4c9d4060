"""Fixtures for the chaos suite (marker `chaos`): private Redis and Postgres that may be wiped
and restarted, the simulator at 50 ms, a fresh ledger per scenario, and the figures file.

Without `redis-server` or `initdb` binaries the suite uses the shared servers instead: Redis
loss then flushes only the test database, and the Postgres restart becomes `pg_ctlcluster
restart` under CI=true, or terminating the test database's backends elsewhere (restarting a
shared server would break other people's sessions).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import create_engine, text

from tests.chaos.checks import Figures
from tests.chaos.services import PrivatePostgres, PrivateRedis
from tests.chaos.stack import Services
from tests.conftest import IN_CI, REDIS_TEST_URL

SIM_LATENCY_MS = 50
PROVIDERS = ("openai", "anthropic")
LEDGER_TABLES = (
    "attempts, jobs, batches, budget_windows, quota_limits, nightly_runs, inbox_files, workers"
)

_FIGURES: list[Figures] = []


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    for figures in _FIGURES:
        if figures.lines:
            terminalreporter.section("llmq chaos figures")
            for line in figures.lines:
                terminalreporter.write_line(line)
            terminalreporter.write_line(f"figures file: {figures.path}")


@pytest.fixture(scope="session")
def chaos_redis() -> Iterator[tuple[str, bool]]:
    """(url, private): a private redis-server when installed, else the shared test db."""
    if PrivateRedis.available():
        server = PrivateRedis().start()
        yield server.url, True
        server.stop()
        return
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis is not reachable in CI: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    finally:
        client.close()
    yield REDIS_TEST_URL, False


@pytest.fixture(scope="session")
def chaos_pg(request: pytest.FixtureRequest) -> Iterator[tuple[str, PrivatePostgres | None]]:
    """(database url at head, private cluster or None)."""
    from core.ledger.migrate import upgrade

    if not PrivatePostgres.available():
        yield request.getfixturevalue("pg_url"), None
        return
    cluster = PrivatePostgres().start()
    admin = create_engine(cluster.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE llmq_chaos"))
    admin.dispose()
    url = cluster.admin_url.rsplit("/", 1)[0] + "/llmq_chaos"
    upgrade(url)
    yield url, cluster
    cluster.stop()


@pytest.fixture(scope="session")
def chaos_sim() -> Iterator[object]:
    from simulator.server import start_in_thread

    server = start_in_thread()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Figures:
    recorder = Figures(tmp_path_factory.getbasetemp() / "chaos-figures.json")
    _FIGURES.append(recorder)
    return recorder


def _restarter(pg_url: str, cluster: PrivatePostgres | None):  # type: ignore[no-untyped-def]
    def restart() -> str:
        if cluster is not None:
            try:
                cluster.restart()
            finally:
                cluster.ensure_running()  # restore the service even if the restart failed
            return "pg_ctl restart -m fast (private cluster)"
        if IN_CI:
            version = sorted(os.listdir("/etc/postgresql"))[-1]
            cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
            try:
                subprocess.run(cmd, check=True, timeout=120)
            finally:
                start = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"]
                subprocess.run(start, check=False, timeout=120)
            return "pg_ctlcluster restart (shared server, CI)"
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        admin.dispose()
        return "pg_terminate_backend on every backend of the test database"

    return restart


@pytest.fixture()
def services(
    chaos_redis: tuple[str, bool],
    chaos_pg: tuple[str, PrivatePostgres | None],
    chaos_sim,  # type: ignore[no-untyped-def]
) -> Services:
    """Clean ledger, empty Redis, simulator reset to 50 ms and no faults."""
    redis_url, private = chaos_redis
    pg_url, cluster = chaos_pg
    if cluster is not None:
        cluster.ensure_running()
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {LEDGER_TABLES} CASCADE"))
    engine.dispose()
    client = redis.Redis.from_url(redis_url)

    def flush() -> None:
        client.flushall() if private else client.flushdb()

    flush()
    chaos_sim.reset(behaviour=True)
    for provider in PROVIDERS:
        chaos_sim.configure(provider, latency_ms=SIM_LATENCY_MS, timeout_hold_s=2.0)
    return Services(redis_url, pg_url, chaos_sim, flush, _restarter(pg_url, cluster))
