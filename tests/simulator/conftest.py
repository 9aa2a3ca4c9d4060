"""Fixtures for the simulator tests: one real simulator per session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulator.server import RunningSimulator, start_in_thread


@pytest.fixture(scope="session")
def sim_server() -> Iterator[RunningSimulator]:
    """A real simulator on 127.0.0.1 with an ephemeral port, for the whole session."""
    server = start_in_thread()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sim_http(sim_server: RunningSimulator) -> Iterator[httpx.Client]:
    """One sync httpx client for the session (building clients is slow: SSL setup)."""
    with httpx.Client(base_url=sim_server.url, timeout=10.0) as http:
        yield http


@pytest.fixture()
def sim(sim_server: RunningSimulator) -> RunningSimulator:
    """The session simulator, with counters, log, limits and behaviours reset."""
    sim_server.reset(behaviour=True)
    return sim_server


@pytest.fixture()
def client(sim: RunningSimulator, sim_http: httpx.Client) -> httpx.Client:
    """The session httpx client, pointed at a freshly reset simulator."""
    return sim_http
