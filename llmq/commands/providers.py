"""`llmq simulate` (the provider simulator) and `llmq check-config` (what the config resolves to).

Owns: these commands' options and output. Must not: print or log an API key (check-config says
only whether one is present), or import provider code at module import time (the CLI must
start fast; `workers.*` and `simulator.*` are imported inside the commands).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Annotated, Any

import typer


def simulate(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8900,
    host: Annotated[
        str, typer.Option(help="Interface to bind (loopback by default).")
    ] = "127.0.0.1",
    config: Annotated[
        str | None, typer.Option("--config", help="Simulator behaviour file (YAML/JSON SimConfig).")
    ] = None,
    latency_ms: Annotated[
        float | None, typer.Option("--latency-ms", help="Latency of every provider, milliseconds.")
    ] = None,
) -> None:
    """Serve all six provider wire formats locally (see examples/llm_config.yaml)."""
    from simulator.config import SimConfig
    from simulator.server import serve

    try:
        sim_config = SimConfig.from_file(config) if config else SimConfig()
    except (OSError, ValueError) as exc:
        typer.echo(f"{config}: {exc}", err=True)
        raise typer.Exit(2) from None
    if latency_ms is not None:
        sim_config = sim_config.with_latency(latency_ms)
    serve(host=host, port=port, config=sim_config)


def _rows(config: Any) -> list[dict[str, Any]]:
    from workers.pricing import price_for
    from workers.providers import REGISTRY, build_adapter, has_credentials
    from workers.providers.http import make_client

    now = datetime.now(UTC)
    default = config.default_model_name()
    rows = []
    with make_client(max_connections=1) as client:  # adapters resolve URLs; nothing is sent
        for m in config.models:
            price = price_for(m, now)
            adapter = build_adapter(m, config, client)
            rows.append(
                {
                    "deployment": m.deployment_id,
                    "model": m.name,
                    "provider": m.provider.value,
                    "base_url": adapter.base_url,
                    "default": m.name == default,
                    "configured": True,
                    "key_present": has_credentials(m, config),
                    "key_env": next(iter(REGISTRY[m.provider].env_keys), None),
                    "price_known": price is not None,
                    "input_per_mtok": str(price.input_per_mtok) if price else None,
                    "output_per_mtok": str(price.output_per_mtok) if price else None,
                    "price_source": price.source if price else None,
                }
            )
    return rows


def _print_table(rows: list[dict[str, Any]], source: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"llmq config: {source}")
    for column in ("deployment", "model", "provider", "base url", "key", "price in/out $/Mtok"):
        table.add_column(column)
    for r in rows:
        key = "present" if r["key_present"] else f"[red]missing[/red] ({r['key_env'] or 'api_key'})"
        price = (
            f"{r['input_per_mtok']} / {r['output_per_mtok']} ({r['price_source']})"
            if r["price_known"]
            else "[yellow]unknown[/yellow]"
        )
        name = r["model"] + (" (default)" if r["default"] else "")
        table.add_row(r["deployment"], name, r["provider"], r["base_url"], key, price)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped: do not squeeze URLs into 80 columns
    console.print(table)


def check_config(
    config: Annotated[
        str | None, typer.Option("--config", help="Config file (default: $LLMQ_CONFIG).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Load llm_config.yaml and show each deployment: configured, key present, price known."""
    from core.config_file import config_source
    from core.errors import ConfigError
    from workers.providers.config import load_config

    try:
        loaded = load_config(config)
    except ConfigError as exc:
        typer.echo(f"invalid config: {exc}", err=True)
        raise typer.Exit(2) from None
    rows = _rows(loaded)
    source = str(config_source(config, os.environ))
    if as_json:
        typer.echo(json.dumps({"source": source, "deployments": rows}, indent=2))
    else:
        _print_table(rows, source)
    if not any(r["key_present"] for r in rows):
        typer.echo("warning: no deployment has credentials; calls will fail", err=True)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `llmq` app."""
    app.command("simulate")(simulate)
    app.command("check-config")(check_config)
