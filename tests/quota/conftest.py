"""Fixtures for the quota tests: one ledger on Postgres and, for the embedded mode, SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.ledger.db import make_engine, make_sessionmaker


@pytest.fixture(params=["postgres", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path) -> Iterator[sessionmaker[Session]]:  # type: ignore[no-untyped-def]
    """A sessionmaker on an empty ledger at head: the test database, or a fresh SQLite file."""
    if request.param == "postgres":
        url = request.getfixturevalue("clean_db")
    else:
        from core.ledger.migrate import upgrade

        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        upgrade(url)
    engine = make_engine(url, pool_size=2)
    yield make_sessionmaker(engine)
    engine.dispose()
