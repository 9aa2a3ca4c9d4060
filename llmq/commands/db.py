"""`llmq db upgrade`: apply the ledger migrations."""

from __future__ import annotations

import os

import typer

from schemas.settings import load_settings


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="Ledger database: migrations.", no_args_is_help=True)

    @db_app.command("upgrade")
    def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
        """Apply the Alembic migrations to LLMQ_DATABASE_URL."""
        from core.ledger.migrate import upgrade as run_upgrade

        url = load_settings(os.environ).database_url
        run_upgrade(url, revision)
        typer.echo(f"database at {revision}")

    app.add_typer(db_app, name="db")
