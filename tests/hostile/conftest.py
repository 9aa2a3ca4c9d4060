"""Fixtures for the hostile-provider tests: the pipeline's simulator and worker rig, plus a
shared httpx client for calling adapters directly."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.pipeline.conftest import rig, sim, sim_session  # noqa: F401 - re-exported fixtures
from workers.providers.http import make_client


@pytest.fixture(scope="session")
def client() -> Iterator[httpx.Client]:
    c = make_client(max_connections=16, timeout_s=30)
    yield c
    c.close()
