"""`llmq reconcile`: the ledger's tokens and cost per model and day against the provider's own
usage report (issue 19).

Owns: the command's options, where the provider's figures come from (the adapter's
`usage_report`, read with the admin key its `admin_env_keys` name, else the provider's key,
at the configured api_base; or `--file CSV` for providers without a usage API) and the output.
Must not: compare (workers/reconcile.py does), write anything, or print a key.

Exit codes: 0 = every figure within the tolerance, 1 = differences past it, 2 = bad input
(config, CSV, a provider without a usage API and no --file, the report unreachable).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from llmq.commands.quota import _ledger, _parse_since


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


def _ledger_rows(provider: str, since: date) -> list[Any]:
    from core.ledger.usage_repo import usage_report
    from workers.providers.usage_reports import ReportRow

    start = datetime.combine(since, datetime.min.time(), tzinfo=UTC)
    with _ledger() as session:
        rows = usage_report(session, start, by=("model", "day"), provider=provider)
    return [
        ReportRow(
            r.group["model"],
            date.fromisoformat(r.group["day"]),
            r.prompt_tokens,
            r.completion_tokens,
            r.cached_tokens,
            r.cache_write_tokens,
            r.cost_usd,
        )
        for r in rows
    ]


def _provider_rows(provider: str, since: date, until: date, config_path: str | None) -> list[Any]:
    """The provider's report through its adapter, at the deployment's configured base URL."""
    import httpx

    from core.errors import ConfigError
    from workers.providers import REGISTRY, build_adapter
    from workers.providers.config import load_config
    from workers.providers.http import make_client

    adapter_cls = REGISTRY.get(provider)
    # an adapter whose provider has a usage API names its shape (workers/providers/usage_reports)
    if getattr(adapter_cls, "usage_report", None) is None:
        raise _fail(f"{provider}: no usage API llmq can read; export its usage and pass --file")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise _fail(f"invalid config: {exc}") from None
    deployment = next((m for m in config.models if m.provider == provider), None)
    if deployment is None:
        raise _fail(f"{provider}: no deployment of it in the config")
    with make_client(max_connections=1) as client:
        adapter = build_adapter(deployment, config, client)
        report = adapter.usage_report  # type: ignore[attr-defined]
        admin_keys: tuple[str, ...] = getattr(adapter, "admin_env_keys", ())
        admin = next((os.environ[k] for k in admin_keys if os.environ.get(k)), None)
        key = admin or adapter.key()
        if key is None:
            raise _fail(f"{provider}: no key; set {' or '.join(admin_keys)}")
        try:
            return report.fetch(client, adapter.base_url, report.key_headers(key), since, until)
        except httpx.HTTPStatusError as exc:
            raise _fail(f"{provider} usage report: HTTP {exc.response.status_code}") from None
        except (httpx.HTTPError, ValueError) as exc:
            raise _fail(f"{provider} usage report: {adapter.redact(str(exc))}") from None


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,}" if isinstance(v, int) else f"{v:f}"


def reconcile(
    provider: Annotated[str, typer.Option("--provider", help="Provider name, as in the config.")],
    since: Annotated[str, typer.Option(help="First UTC day: an ISO date, or 7d, 2w ...")],
    file: Annotated[
        Path | None, typer.Option("--file", help="The provider's usage export (CSV).")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Allowed difference, a fraction of the larger value (0 = exact).")
    ] = 0.0,
    config: Annotated[
        str | None, typer.Option("--config", help="Config file (default: $LLMQ_CONFIG).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare the ledger's tokens and cost per model and day with the provider's own books."""
    from core.errors import ConfigError
    from workers.reconcile import FIELDS, compare, read_csv

    first = _parse_since(since, datetime.now(UTC)).astimezone(UTC).date()
    until = datetime.now(UTC).date() + timedelta(days=1)
    fields: tuple[str, ...] = FIELDS
    if file is not None:
        try:
            theirs, fields = read_csv(file)
        except (ConfigError, OSError, UnicodeDecodeError) as exc:
            raise _fail(str(exc)) from None
        theirs = [r for r in theirs if r.day >= first]
    else:
        theirs = _provider_rows(provider, first, until, config)
    ours = _ledger_rows(provider, first)
    diffs = compare(ours, theirs, fields, Decimal(str(tolerance)))
    if as_json:
        out = {
            "provider": provider,
            "since": first.isoformat(),
            "rows": {"ledger": len(ours), "provider": len(theirs)},
            "differences": [
                {"model": d.model, "day": d.day.isoformat(), "field": d.field,
                 "ledger": _cell(d.ledger), "provider": _cell(d.provider)}
                for d in diffs
            ],
        }  # fmt: skip
        typer.echo(json.dumps(out, indent=2))
    else:
        typer.echo(
            f"{provider} since {first}: {len(ours)} ledger rows, {len(theirs)} provider rows"
        )
        for d in diffs:
            delta = _cell(d.delta)
            typer.echo(
                f"  {d.day} {d.model} {d.field}: ledger {_cell(d.ledger)}, "
                f"provider {_cell(d.provider)} (difference {delta})"
            )
        typer.echo("no differences" if not diffs else f"{len(diffs)} difference(s)")
    if diffs:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `llmq reconcile` to the `llmq` app."""
    app.command("reconcile")(reconcile)
