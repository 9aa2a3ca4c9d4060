"""`llmq metrics`, `llmq flower` and `llmq providers`: watching a running llmq.

Owns: the command-line side of monitoring: serving the Prometheus collector, launching Flower
with safe defaults, and the provider health table with its alert check. Must not: compute
metrics or alert rules itself (workers.observability does), or import provider code at module
import (every worker-side import happens inside a command).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import typer

from schemas.settings import Settings, load_settings

FLOWER_MAX_TASKS = 20000  # Flower keeps tasks in memory; bound it (celery-notes.md §6)
FLOWER_PURGE_OFFLINE_S = 3600  # forget workers gone for an hour


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics_cmd)
    app.command("flower")(flower_cmd)
    app.command("providers")(providers_cmd)


# ---- llmq metrics ----------------------------------------------------------------------------


def build_registry(settings: Settings, config: Any) -> Any:
    """A CollectorRegistry holding only llmq's ledger collector (no per-process metrics: this
    process's own counters would say nothing about the workers)."""
    from prometheus_client import CollectorRegistry

    from core.ledger.db import make_engine
    from workers.observability.metrics import LedgerCollector

    engine = make_engine(settings.database_url, pool_size=2)
    ids = tuple(m.deployment_id for m in config.models)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(engine, _health_store(settings), lambda: ids))
    return registry


def _health_store(settings: Settings) -> Any:
    """The shared Redis health store the workers write (read-only use here)."""
    import redis

    from workers.routing.health import RedisHealthStore

    return RedisHealthStore(redis.Redis.from_url(settings.state_redis_url))


def metrics_cmd(
    port: int = typer.Option(9464, help="TCP port to serve /metrics on."),
    address: str = typer.Option("127.0.0.1", help="Address to bind; /metrics has no auth."),
) -> None:
    """Serve Prometheus metrics computed from the ledger at each scrape (any number of workers)."""
    import threading

    from prometheus_client import start_http_server

    settings, config = _load()
    registry = build_registry(settings, config)
    start_http_server(port, addr=address, registry=registry)
    typer.echo(f"serving http://{address}:{port}/metrics", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


# ---- llmq flower -----------------------------------------------------------------------------


def flower_argv(address: str, port: int, max_tasks: int, purge_offline_s: int) -> list[str]:
    from importlib.util import find_spec

    spec = find_spec("workers.flowerconfig")  # installed or editable: wherever workers lives
    conf = spec.origin if spec and spec.origin else "flowerconfig.py"
    return [
        sys.executable, "-m", "celery", "-A", "workers", "flower",
        f"--address={address}", f"--port={port}", f"--max_tasks={max_tasks}",
        f"--purge_offline_workers={purge_offline_s}", f"--conf={conf}",
    ]  # fmt: skip


def _is_loopback(address: str) -> bool:
    import ipaddress

    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def flower_cmd(
    port: int = typer.Option(5555, help="TCP port for Flower's UI and API."),
    address: str = typer.Option("127.0.0.1", help="Address to bind."),
    basic_auth: str | None = typer.Option(
        None, "--basic-auth", help="user:pass[,user2:pass2]; default $FLOWER_BASIC_AUTH."
    ),
    max_tasks: int = typer.Option(FLOWER_MAX_TASKS, help="Tasks Flower keeps in memory."),
) -> None:
    """Run Flower for the llmq workers (`celery -A workers flower` with safe defaults)."""
    auth = basic_auth or os.environ.get("FLOWER_BASIC_AUTH") or None
    if auth is not None and any(":" not in pair for pair in auth.split(",")):
        raise typer.BadParameter("expected user:pass[,user2:pass2]", param_hint="--basic-auth")
    if auth is None and not _is_loopback(address):
        # Flower's UI can revoke tasks and shut workers down: never expose it without auth.
        typer.echo("refusing to bind Flower beyond loopback without --basic-auth", err=True)
        raise typer.Exit(2)
    env = dict(os.environ)
    if auth is not None:
        # Through the environment, not argv: argv is visible to every user in `ps`.
        env["FLOWER_BASIC_AUTH"] = auth
    argv = flower_argv(address, port, max_tasks, FLOWER_PURGE_OFFLINE_S)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # replace this process: signals reach Flower directly


# ---- llmq providers --------------------------------------------------------------------------


@dataclass
class ProviderRow:
    provider: str
    deployment: str | None
    model: str | None
    configured: bool
    has_key: bool
    circuit: str | None
    available: bool
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    requests_today: int = 0
    failures_today: int = 0
    tokens_today: int = 0
    cost_today_usd: Decimal = Decimal(0)
    recent_calls: int = 0
    recent_failures: int = 0


def _load() -> tuple[Settings, Any]:
    from workers.observability.logs import setup_logging
    from workers.observability.redaction import config_secrets, env_secrets
    from workers.providers.config import load_config

    settings = load_settings(os.environ)
    config = load_config(settings.config_path)
    setup_logging(
        json_lines=settings.log_json or config.monitoring.log_json,
        secrets=[*env_secrets(os.environ), *config_secrets(config)],
    )
    return settings, config


def _stat(stats: Any, name: str, default: Any = None) -> Any:
    if stats is None:
        return default
    if isinstance(stats, Mapping):
        return stats.get(name, default)
    return getattr(stats, name, default)


def _today(settings: Settings, now: datetime) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    from core.ledger.db import make_engine
    from core.ledger.usage_repo import usage_report
    from core.quota import windows

    day = windows(now)["day"]
    since = datetime(day.year, day.month, day.day, tzinfo=UTC)
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with Session(engine) as session:
            rows = usage_report(session, since, by=("deployment",))
        return {r.group["deployment"]: r for r in rows}
    finally:
        engine.dispose()


def _health(settings: Settings, ids: list[str], now: float) -> tuple[Any, Mapping[str, Any]]:
    """(snapshot or None, stats by deployment); empty when Redis is unreachable."""
    store = _health_store(settings)
    try:
        snap = store.snapshot(ids, now)
        stats_fn = getattr(store, "stats", None)
        return snap, (stats_fn(ids) if stats_fn else {})
    except Exception as exc:  # noqa: BLE001 - the table still shows the ledger's side
        typer.echo(f"warning: health store unavailable ({type(exc).__name__})", err=True)
        return None, {}


def _row(m: Any, has_key: bool, h: Any, st: Any, u: Any) -> ProviderRow:
    """One deployment's row from its health (h), recent stats (st) and today's usage (u)."""
    circuit = h.circuit if h is not None else None
    judged = int(_stat(st, "successes", 0) or 0) + int(_stat(st, "failures", 0) or 0)
    return ProviderRow(
        provider=m.provider.value,
        deployment=m.deployment_id,
        model=m.name,
        configured=True,
        has_key=has_key,
        circuit=circuit,
        available=has_key and circuit != "open",
        success_rate=_stat(st, "success_rate"),
        p50_ms=_stat(st, "p50_latency_ms"),
        p95_ms=_stat(st, "p95_latency_ms"),
        requests_today=(u.attempts - u.cache_hits) if u else 0,
        failures_today=u.failed if u else 0,
        tokens_today=u.total_tokens if u else 0,
        cost_today_usd=u.cost_usd if u else Decimal(0),
        # judged calls only: throttling and rejected requests say nothing about health
        recent_calls=judged,
        recent_failures=int(_stat(st, "failures", 0) or 0),
    )


def gather_rows(settings: Settings, config: Any, now: datetime) -> list[ProviderRow]:
    """One row per configured deployment, plus one per provider with none configured."""
    from workers.providers import REGISTRY, has_credentials

    ids = [m.deployment_id for m in config.models]
    snap, stats = _health(settings, ids, now.timestamp())
    today = _today(settings, now)
    rows = [
        _row(
            m,
            has_credentials(m, config),
            snap.get(m.deployment_id) if snap is not None else None,
            stats.get(m.deployment_id),
            today.get(m.deployment_id),
        )
        for m in config.models
    ]
    configured = {m.provider for m in config.models}
    for p in REGISTRY:
        if p not in configured:
            rows.append(
                ProviderRow(str(p), None, None, False, False, None, False, None, None, None)
            )
    return rows


def provider_rates(rows: list[ProviderRow]) -> list[Any]:
    """Failure rate per provider: the health store's recent window when it has calls, else
    today's ledger (e.g. after Redis was flushed)."""
    from workers.observability.alerts import ProviderRate

    out = []
    for provider in dict.fromkeys(r.provider for r in rows if r.configured):
        mine = [r for r in rows if r.provider == provider]
        calls = sum(r.recent_calls for r in mine)
        if calls:
            out.append(ProviderRate(provider, calls, sum(r.recent_failures for r in mine)))
        else:
            calls = sum(r.requests_today for r in mine)
            out.append(ProviderRate(provider, calls, sum(r.failures_today for r in mine)))
    return out


def _quota_uses(settings: Settings, now: datetime) -> list[Any]:
    from core.ledger.db import make_engine
    from workers.observability.metrics import quota_uses

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return quota_uses(conn, now)
    finally:
        engine.dispose()


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _print_table(rows: list[ProviderRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="llmq providers (today = since 00:00 UTC)")
    for col in ("provider", "deployment", "configured", "available", "circuit"):
        table.add_column(col)
    for col in ("success", "p50 ms", "p95 ms", "requests", "tokens", "cost USD"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.provider, r.deployment or "-", "yes" if r.configured else "no",
            ("yes" if r.available else ("no key" if r.configured and not r.has_key else "no")),
            r.circuit or "-", "-" if r.success_rate is None else f"{r.success_rate:.0%}",
            _fmt_ms(r.p50_ms), _fmt_ms(r.p95_ms), str(r.requests_today), str(r.tokens_today),
            f"{r.cost_today_usd:.6f}",
        )  # fmt: skip
    Console().print(table)


def providers_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when any alert fires."),
) -> None:
    """Provider health at a glance: availability, circuit, latency, and today's usage."""
    from llmq.unreachable import unreachable_exit
    from workers.observability.alerts import evaluate, post_alerts

    settings, config = _load()
    now = datetime.now(UTC)
    with unreachable_exit(settings):  # the ledger or Redis down: one line, exit 2
        rows = gather_rows(settings, config, now)
        quota = _quota_uses(settings, now)
    mon = config.monitoring
    alerts = evaluate(provider_rates(rows), quota, mon.failure_rate_alert, mon.quota_use_alert)
    if as_json:
        doc = {"providers": [asdict(r) for r in rows], "alerts": [asdict(a) for a in alerts]}
        typer.echo(json.dumps(doc, default=str, indent=2))
    else:
        _print_table(rows)
    for a in alerts:
        typer.echo(f"warning: {a.message}", err=True)
    if alerts and mon.webhook_url:
        post_alerts(mon.webhook_url, alerts)
    if check and alerts:
        raise typer.Exit(1)
