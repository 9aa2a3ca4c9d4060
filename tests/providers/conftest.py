"""Fixtures for provider tests: one simulator per session over real HTTP, reset after each
test, and a shared httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from workers.providers.http import make_client


@pytest.fixture(scope="session")
def _sim_server() -> Iterator[Any]:
    from simulator.server import start_in_thread

    sim = start_in_thread()
    yield sim
    sim.stop()


@pytest.fixture()
def sim(_sim_server: Any) -> Iterator[Any]:
    """The running simulator with default behaviour and zeroed counters."""
    _sim_server.reset(behaviour=True)
    yield _sim_server
    _sim_server.reset(behaviour=True)


@pytest.fixture(scope="session")
def client() -> Iterator[httpx.Client]:
    c = make_client(max_connections=16, timeout_s=30)
    yield c
    c.close()
