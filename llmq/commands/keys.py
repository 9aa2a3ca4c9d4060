"""`llmq keys create|list|revoke`: API keys of `llmq serve`; a key's tenant owns what it makes.

Owns: argument parsing and rendering; the ledger's `api_keys_repo` does the work. A new key is
printed once and never again (only its hash is stored). Must not: log a key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.orm import Session

keys_app = typer.Typer(help="API keys for `llmq serve` (tenant = the key's tenant).")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


@contextmanager
def _session() -> Iterator[Session]:
    from core.ledger.db import make_engine, make_sessionmaker, session_scope
    from schemas.settings import load_settings

    engine = make_engine(load_settings(os.environ).database_url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="Whose quota the key's jobs use.")],
    name: Annotated[str | None, typer.Option("--name", help="A label for people.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='{"id", "key", "tenant", "name", "admin"}')
    ] = False,
    admin: Annotated[
        bool, typer.Option("--admin", help="The dashboard shows this key every tenant.")
    ] = False,
) -> None:
    """Create a key and print it once."""
    from core.ledger import api_keys_repo

    if not tenant.strip() or len(tenant) > 100 or (name is not None and len(name) > 200):
        typer.echo("error: --tenant must be 1-100 characters, --name at most 200", err=True)
        raise typer.Exit(2)
    with _session() as session:
        key_id, key = api_keys_repo.create_key(
            session, tenant, name, datetime.now(UTC), admin=admin
        )
    if as_json:
        doc = {"id": key_id, "key": key, "tenant": tenant, "name": name, "admin": admin}
        typer.echo(json.dumps(doc))
        return
    typer.echo(key)
    role = "admin key" if admin else "key"
    typer.echo(
        f"{role} {key_id} for tenant {tenant}: store it now, it is not shown again", err=True
    )


@keys_app.command("list")
def list_(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
) -> None:
    """Every key (id, tenant, name, created, revoked); never the keys themselves."""
    from core.ledger import api_keys_repo

    with _session() as session:
        keys = api_keys_repo.list_keys(session, tenant)
    if as_json:
        typer.echo(json.dumps([k.to_json() for k in keys]))
        return
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        role = "  admin" if k.is_admin else ""
        typer.echo(f"{k.id}  {k.tenant}  {k.name or '-'}  {k.created_at:%Y-%m-%d}  {state}{role}")


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")]) -> None:
    """Revoke a key: its requests answer 401 from now on."""
    from core.ledger import api_keys_repo

    with _session() as session:
        done = api_keys_repo.revoke_key(session, key_id, datetime.now(UTC))
    if not done:
        typer.echo(f"error: no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")
