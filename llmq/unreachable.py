"""One clear line, not a traceback, when a command cannot reach the ledger or Redis.

Owns: `unreachable_exit`, a context manager for commands that read Postgres or Redis: a
connection failure becomes ``error: the ledger database at URL is unreachable: REASON``
(password hidden; likewise for Redis and the broker) on stderr and exit code 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from schemas.settings import Settings

EXIT_UNREACHABLE = 2


@contextmanager
def unreachable_exit(settings: Settings) -> Iterator[None]:
    """Turn a database or Redis connection failure inside the block into one line + exit 2."""
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as exc:
        what = f"the ledger database at {_where(settings.database_url)}"
        _fail(what, exc.orig if exc.orig is not None else exc)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        _fail(f"Redis at {_where(settings.broker_url)}", exc)
    except BrokerError as exc:
        _fail(f"the broker at {_where(settings.broker_url)}", exc)


def _fail(what: str, cause: BaseException) -> None:
    reason = " ".join(str(cause).split())  # drivers' messages span lines
    typer.echo(f"error: {what} is unreachable: {reason[:300]}", err=True)
    raise typer.Exit(EXIT_UNREACHABLE)


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is still worth naming, minus secrets
        return url.split("@")[-1]
