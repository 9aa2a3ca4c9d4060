"""Shared fixtures: a throwaway Postgres database at head, a clean Redis db, the simulator,
and a guard that fails any test reaching a non-loopback host.

Real services only. Locally a missing service skips its tests; under CI=true it fails.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("LLMQ_TEST_PG_ADMIN", "postgresql+psycopg://127.0.0.1/postgres")
# One Redis server for the run (LLMQ_TEST_REDIS, default the local one) and, under
# pytest-xdist, databases of its own per test worker: gw0 gets 9 (jobs) and 10 (a second
# suite-private db), gw1 gets 11 and 12, ... so parallel workers never flush each other.
REDIS_TEST_BASE = os.environ.get("LLMQ_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")
_WORKER_INDEX = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def redis_db_url(slot: int = 0) -> str:
    """The test worker's own Redis db number `slot` (0 or 1)."""
    db = 9 + 2 * _WORKER_INDEX + slot
    if db > 15:  # Redis has 16 databases by default; more workers than that wrap around
        db = 2 + (db - 2) % 14
    return f"{REDIS_TEST_BASE}/{db}"


REDIS_TEST_URL = os.environ.get("LLMQ_TEST_REDIS_URL") or redis_db_url(0)
REDIS_TEST_URL_2 = redis_db_url(1)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    if isinstance(address, tuple) and self.family in (socket.AF_INET, socket.AF_INET6):
        host = str(address[0])
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = host == "localhost"
        if not ok:
            raise RuntimeError(f"test tried to reach non-loopback host {host!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    socket.socket.connect = _loopback_only  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _process_secrets() -> Iterator[None]:
    """Secrets a test registers (loading a config, building an adapter) are forgotten after it,
    so one test's made-up keys never redact another test's text."""
    from core.secrets_scrub import SECRETS

    held = SECRETS.snapshot()
    yield
    SECRETS.restore(held)


def _unavailable(what: str, exc: Exception) -> None:
    if IN_CI:
        pytest.fail(f"{what} is not reachable in CI: {exc}")
    pytest.skip(f"{what} not reachable: {exc}")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database, migrated to head, dropped at the end of the session."""
    from sqlalchemy import create_engine, text

    from core.ledger.migrate import upgrade

    name = f"llmq_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no Postgres"
        _unavailable("PostgreSQL", exc)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def engine(pg_url: str):  # type: ignore[no-untyped-def]
    from core.ledger.db import make_engine

    eng = make_engine(pg_url, pool_size=8)
    yield eng
    eng.dispose()


TABLES = (
    "attempts, jobs, batches, budget_windows, quota_limits, nightly_runs, inbox_files, "
    "api_batches, api_file_chunks, api_files, api_keys, workers, provider_batch_items, "
    "provider_batches"
)


@pytest.fixture()
def clean_db(engine, pg_url: str) -> str:  # type: ignore[no-untyped-def]
    """Empty every ledger table; returns the database URL."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    return pg_url


@pytest.fixture()
def redis_url() -> str:
    """A flushed Redis database reserved for tests."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.flushdb()
    except Exception as exc:  # noqa: BLE001
        _unavailable("Redis", exc)
    finally:
        client.close()
    return REDIS_TEST_URL
