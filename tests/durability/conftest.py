"""Fixtures for the sweeper tests: a sessionmaker on the clean test database, and `Ledger`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.ledger.db import make_sessionmaker
from tests.durability.ledger_rows import Ledger


@pytest.fixture()
def sessions(engine: Engine, clean_db: str) -> Iterator[sessionmaker[Session]]:
    yield make_sessionmaker(engine)


@pytest.fixture()
def ledger(sessions: sessionmaker[Session]) -> Ledger:
    return Ledger(sessions)
