"""`llmq doctor`: check everything llmq needs and say what is wrong and how to fix it.

Owns: the checks (config, timing settings, database, migration level, broker, provider keys,
provider reachability), their report and the exit code (1 if any check failed; warnings do
not fail). Must not: change anything, print or send an API key (reachability is a plain GET of
each provider's base URL without credentials: any HTTP answer means reachable), or import
provider code at module import (the CLI must start fast).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from schemas.config import LLMConfig
    from schemas.settings import Settings

Status = Literal["ok", "warn", "FAIL"]
VISIBILITY_MARGIN_S = 60  # prefetch wait and clock skew on top of a run plus a countdown


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# ---- the checks ---------------------------------------------------------------------------


def check_config(settings: Settings, env: Mapping[str, str]) -> tuple[Check, LLMConfig | None]:
    from core.config_file import config_source
    from core.errors import ConfigError
    from workers.providers.config import load_config

    source = config_source(settings.config_path, env)
    try:
        config = load_config(settings.config_path, env)
    except ConfigError as exc:
        fix = f"edit {source} (see examples/llm_config.yaml), or point LLMQ_CONFIG at another file"
        return Check("config", "FAIL", str(exc), fix), None
    if not config.models:
        return Check("config", "FAIL", f"{source}: no models", "add a `models:` entry"), config
    detail = (
        f"{source}: {len(config.models)} deployments, default model {config.default_model_name()}"
    )
    return Check("config", "ok", detail), config


def check_timings(settings: Settings, config: LLMConfig) -> Check:
    """The Celery visibility timeout must outlast the longest run plus the longest countdown,
    or a countdown message is handed to a second worker while the first still holds it; the
    lease must outlast one call, or live calls are taken over."""
    longest_call = max([p.timeout_s for p in config.providers.values()] or [120.0])
    countdown = config.routing.max_countdown_s
    need = longest_call + countdown + VISIBILITY_MARGIN_S
    problems = []
    if settings.visibility_timeout_s < need:
        problems.append(
            f"LLMQ_VISIBILITY_TIMEOUT_S={settings.visibility_timeout_s} < longest call "
            f"{longest_call:g}s + longest countdown {countdown:g}s + {VISIBILITY_MARGIN_S}s"
        )
    if settings.lease_s <= longest_call:
        problems.append(f"LLMQ_LEASE_S={settings.lease_s:g} <= longest call {longest_call:g}s")
    if problems:
        fix = f"raise LLMQ_VISIBILITY_TIMEOUT_S to >= {need:g} and LLMQ_LEASE_S above the call timeout"
        return Check("timings", "FAIL", "; ".join(problems), fix)
    detail = (
        f"visibility {settings.visibility_timeout_s}s, lease {settings.lease_s:g}s, "
        f"sweep every {settings.sweep_interval_s:g}s, re-send after {settings.requeue_after_s:g}s"
    )
    return Check("timings", "ok", detail)


def check_database(url: str, timeout_s: float) -> tuple[Check, Engine | None]:
    from sqlalchemy import create_engine, text

    shown = _hide_password(url)
    args = {"connect_timeout": max(1, int(timeout_s))} if url.startswith("postgresql") else {}
    engine = create_engine(url, connect_args=args, pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        engine.dispose()
        fix = (
            "start PostgreSQL (scripts/services.sh), create the database, or set LLMQ_DATABASE_URL"
        )
        return Check("database", "FAIL", f"{shown}: {_short(exc)}", fix), None
    return Check("database", "ok", shown), engine


def check_migrations(engine: Engine) -> Check:
    from alembic.runtime.migration import MigrationContext

    from core.ledger.migrate import current_heads

    heads = set(current_heads())
    with engine.connect() as conn:
        at = set(MigrationContext.configure(conn).get_current_heads())
    if at == heads:
        return Check("migrations", "ok", f"at head {', '.join(sorted(heads))}")
    where = ", ".join(sorted(at)) or "an empty database (no llmq tables)"
    fix = "run `llmq db upgrade`"
    if not all(_known_revision(rev) for rev in at):
        fix = "the database is newer than this llmq: upgrade llmq on this machine"
    return Check("migrations", "FAIL", f"at {where}; head is {', '.join(sorted(heads))}", fix)


def _known_revision(rev: str) -> bool:
    from alembic.script import ScriptDirectory

    from core.ledger.migrate import alembic_config

    try:
        return (
            ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(rev) is not None
        )
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
        return False


def check_broker(url: str, timeout_s: float) -> Check:
    from kombu import Connection

    shown = _hide_password(url)
    try:
        with Connection(url, connect_timeout=timeout_s) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        fix = "start Redis (scripts/services.sh), or set LLMQ_BROKER_URL"
        return Check("broker", "FAIL", f"{shown}: {_short(exc)}", fix)
    return Check("broker", "ok", shown)


def check_keys(config: LLMConfig, source: str) -> list[Check]:
    """Per provider in use: is its key present? A missing key only disables that provider's
    deployments (warn), unless it leaves the default model with none usable (fail)."""
    from workers.providers import env_names, has_credentials

    usable = {m.name for m in config.models if has_credentials(m, config)}
    default = config.default_model_name()
    checks = []
    for provider in dict.fromkeys(m.provider for m in config.models):
        name = f"key {provider.value}"
        deployments = [m for m in config.models if m.provider == provider]
        missing = [m for m in deployments if not has_credentials(m, config)]
        if not missing:
            checks.append(Check(name, "ok", f"usable ({_plural(len(deployments), 'deployment')})"))
            continue
        stranded = sorted({m.name for m in missing} - usable)
        names = " or ".join(env_names(provider)) or "its key"
        fix = (
            f"set {names} (environment or .env), or providers.{provider.value}.api_key in {source}"
        )
        detail = f"no API key: {_plural(len(missing), 'deployment')} disabled"
        if stranded:
            detail += f"; unusable models: {', '.join(stranded)}"
        status: Status = "FAIL" if default in stranded else "warn"
        if status == "FAIL":
            detail += f" (including the default model {default})"
        checks.append(Check(name, status, detail, fix))
    return checks


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_reachable(config: LLMConfig, timeout_s: float) -> list[Check]:
    """One GET per distinct base URL of the credentialed deployments, without credentials."""
    import httpx

    from workers.providers import build_adapter, has_credentials

    bases: dict[str, list[str]] = {}
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for m in config.models:
            if has_credentials(m, config):
                base = build_adapter(m, config, client).base_url
                bases.setdefault(base, []).append(m.provider.value)
        checks = []
        for base, providers in bases.items():
            name = f"reach {providers[0]}"
            started = time.monotonic()
            try:
                resp = client.get(base)
            except httpx.HTTPError as exc:
                fix = (
                    f"check providers.{providers[0]}.api_base, the network/proxy, or that the "
                    "local server is running"
                )
                checks.append(Check(name, "FAIL", f"{base}: {_short(exc)}", fix))
                continue
            ms = int((time.monotonic() - started) * 1000)
            checks.append(Check(name, "ok", f"{base}: HTTP {resp.status_code} in {ms} ms"))
    return checks


def run_checks(env: Mapping[str, str], timeout_s: float, probe: bool) -> list[Check]:
    """Every check, in order; later checks are skipped when what they need failed."""
    from core.config_file import config_source
    from schemas.settings import load_settings

    settings = load_settings(env)
    checks: list[Check] = []
    config_check, config = check_config(settings, env)
    checks.append(config_check)
    if config is not None and config.models:
        checks.append(check_timings(settings, config))
    db_check, engine = check_database(settings.database_url, timeout_s)
    checks.append(db_check)
    if engine is not None:
        try:
            checks.append(check_migrations(engine))
        finally:
            engine.dispose()
    checks.append(check_broker(settings.broker_url, timeout_s))
    if config is not None and config.models:
        checks.extend(check_keys(config, str(config_source(settings.config_path, env))))
        if probe:
            checks.extend(check_reachable(config, timeout_s))
    return checks


# ---- the command --------------------------------------------------------------------------


def _render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    failed = sum(c.status == "FAIL" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    if warned:
        lines[-1] += f", {warned} warning(s)"
    return "\n".join(lines)


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    timeout_s: float = typer.Option(3.0, "--timeout", min=0.1, help="Seconds per network check."),
    probe: bool = typer.Option(
        True, "--probe/--no-probe", help="Contact each provider's base URL (no credentials sent)."
    ),
) -> None:
    """Check the broker, database, migrations, config, keys and providers; say how to fix
    what is wrong. Exit code 1 if any check failed."""
    checks = run_checks(os.environ, timeout_s, probe)
    failed = any(c.status == "FAIL" for c in checks)
    if json_out:
        payload: dict[str, Any] = {"ok": not failed, "checks": [asdict(c) for c in checks]}
        typer.echo(json.dumps(payload, indent=2))
    else:
        typer.echo(_render(checks))
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `llmq doctor` to the `llmq` app."""
    app.command("doctor")(doctor)
