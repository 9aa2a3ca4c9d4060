"""`llmq quota set|show` and `llmq usage`: tenant budgets and what was spent, from the ledger.

Owns: parsing these commands' options and printing their tables / JSON. Must not: compute or
write anything itself (core.ledger.quota_repo and usage_repo do), or import provider code.
JSON money values are strings with 8 decimals, so they keep the ledger's exact NUMERIC value.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.money import money_str
from schemas.settings import load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.ledger.quota_report_repo import WindowReport
    from core.ledger.usage_repo import UsageRow

NO_LIMIT = ("none", "off", "unlimited", "-")
SINCE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@contextmanager
def _ledger() -> Iterator[Session]:
    """One transaction on LLMQ_DATABASE_URL; a clear message (no password) if it is down."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from core.ledger.db import make_engine, make_sessionmaker, session_scope

    url = load_settings(os.environ).database_url
    engine = make_engine(url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            yield session
    except OperationalError as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        typer.echo(f"cannot use the ledger at {shown}: {exc.orig}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()


def _parse_limit(text: str | None, parse: Callable[[str], Any], option: str) -> Any:
    """None = option not given; NO_LIMIT words remove the limit; else a number >= 0."""
    if text is None:
        return None
    if text.strip().lower() in NO_LIMIT:
        return "clear"
    try:
        value = parse(text.strip())
    except (InvalidOperation, ValueError):
        raise typer.BadParameter(
            f"{text!r} is not a number (or 'none')", param_hint=option
        ) from None
    if (isinstance(value, Decimal) and not value.is_finite()) or value < 0:
        raise typer.BadParameter(f"{text!r} must be a number >= 0", param_hint=option)
    return value


def _parse_since(text: str, now: datetime) -> datetime:
    """'30m', '24h', '7d', '2w', or an ISO date/time (UTC when it names no zone)."""
    m = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text.lower())
    if m:
        return now - timedelta(**{SINCE_UNITS[m.group(2)]: int(m.group(1))})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: use 7d, 24h, 30m, 2w or an ISO date", param_hint="--since"
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _when(v: date | datetime | None) -> str | None:
    return None if v is None else v.isoformat()


def _window_json(w: WindowReport) -> dict[str, Any]:
    return {
        "tenant": w.tenant,
        "scope": w.scope,
        "period": w.period,
        "window_start": _when(w.window_start),
        "resets_at": _when(w.resets_at),
        "limit_usd": money_str(w.limit_usd),
        "limit_tokens": w.limit_tokens,
        "used_usd": money_str(w.used_usd),
        "used_tokens": w.used_tokens,
        "reserved_usd": money_str(w.reserved_usd),
        "reserved_tokens": w.reserved_tokens,
        "remaining_usd": money_str(w.remaining_usd),
        "remaining_tokens": w.remaining_tokens,
    }


def _usage_json(r: UsageRow) -> dict[str, Any]:
    return {
        **r.group,
        "attempts": r.attempts,
        "succeeded": r.succeeded,
        "failed": r.failed,
        "cache_hits": r.cache_hits,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.total_tokens,
        "cached_tokens": r.cached_tokens,
        "cache_write_tokens": r.cache_write_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "cost_usd": money_str(r.cost_usd),
        "unpriced": r.unpriced,
        "saved_usd": money_str(r.saved_usd),
        "lost": r.lost,
        "spent_unknown_usd": money_str(r.spent_unknown_usd),
        "spent_unknown_tokens": r.spent_unknown_tokens,
    }


def _print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _money(v: Decimal | None) -> str:
    return "unlimited" if v is None else f"${v:,.4f}"


def _count(v: int | None) -> str:
    return "unlimited" if v is None else f"{v:,}"


def _window_row(w: WindowReport) -> list[str]:
    where = w.scope if w.period == "batch" else f"{w.period} {w.window_start}"
    used = (w.used_usd, w.reserved_usd, w.limit_usd, w.remaining_usd)
    tokens = (w.used_tokens, w.reserved_tokens, w.limit_tokens, w.remaining_tokens)
    return [
        f"{w.tenant} {where}",
        *map(_money, used),
        *map(_count, tokens),
        _when(w.resets_at) or "-",
    ]


def quota_set(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant to limit.")],
    usd_per_day: Annotated[
        str | None, typer.Option(help="USD per UTC day ('none' = no limit).")
    ] = None,
    tokens_per_day: Annotated[str | None, typer.Option(help="Tokens per UTC day.")] = None,
    usd_per_month: Annotated[str | None, typer.Option(help="USD per UTC month.")] = None,
    tokens_per_month: Annotated[str | None, typer.Option(help="Tokens per UTC month.")] = None,
) -> None:
    """Set a tenant's limits; options not given keep their value. Applies to the current window."""
    from core.ledger.quota_limits_repo import get_limits, set_limits

    given = {
        "day": (
            _parse_limit(usd_per_day, Decimal, "--usd-per-day"),
            _parse_limit(tokens_per_day, int, "--tokens-per-day"),
        ),
        "month": (
            _parse_limit(usd_per_month, Decimal, "--usd-per-month"),
            _parse_limit(tokens_per_month, int, "--tokens-per-month"),
        ),
    }
    if not 0 < len(tenant) <= 100:  # the ledger's tenant columns hold 100 characters
        raise typer.BadParameter("a tenant name has 1 to 100 characters", param_hint="--tenant")
    if all(v is None for pair in given.values() for v in pair):
        raise typer.BadParameter("give at least one limit, e.g. --usd-per-day 5")
    now = datetime.now(UTC)
    with _ledger() as session:
        current = get_limits(session, tenant)
        for period, (usd, tokens) in given.items():
            if usd is None and tokens is None:
                continue
            old_usd, old_tokens = current[period]
            new_usd = old_usd if usd is None else (None if usd == "clear" else usd)
            new_tokens = old_tokens if tokens is None else (None if tokens == "clear" else tokens)
            set_limits(session, tenant, period, new_usd, new_tokens, now)
            current[period] = (new_usd, new_tokens)
    for period, (usd, tokens) in current.items():
        typer.echo(f"{tenant} per {period}: USD {_money(usd)}, tokens {_count(tokens)}")


def quota_show(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Limit, used, reserved and remaining for each tenant's current day and month windows."""
    from core.ledger.quota_report_repo import quota_report

    now = datetime.now(UTC)
    with _ledger() as session:
        report = quota_report(session, tenant, now)
    if as_json:
        out = {"now": now.isoformat(), "windows": [_window_json(w) for w in report]}
        typer.echo(json.dumps(out, indent=2))
        return
    headers = ["window", "USD used", "reserved", "limit", "remaining"]
    headers += ["tokens used", "reserved", "limit", "remaining", "resets (UTC)"]
    _print_table("quota", headers, [_window_row(w) for w in report])


def usage(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    since: Annotated[str, typer.Option(help="7d, 24h, 30m, 2w or an ISO date.")] = "7d",
    by: Annotated[
        str,
        typer.Option(help="Group by: tenant, provider, model, deployment, day, lane (comma list)."),
    ] = "provider,model",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Tokens, cost, attempts, cache hits and saved cost, from the attempts ledger.

    Spend is the tenant's that each call charged when it was made. Calls lost with a dead
    worker are booked at their reservation and shown on their own `spent_unknown` line."""
    from core.ledger.usage_repo import USAGE_DIMENSIONS, lanes_since, usage_report

    dims = [d.strip() for d in by.split(",") if d.strip()]
    bad = [d for d in dims if d not in USAGE_DIMENSIONS]
    if bad:
        raise typer.BadParameter(
            f"{bad}: choose from {', '.join(USAGE_DIMENSIONS)}", param_hint="--by"
        )
    start = _parse_since(since, datetime.now(UTC))
    with _ledger() as session:
        rows = usage_report(session, start, tenant, dims)
        (total,) = usage_report(session, start, tenant, ()) or [None]
        lanes = lanes_since(session, start, tenant)
    if as_json:
        out = {
            "since": start.isoformat(),
            "tenant": tenant,
            "by": dims,
            "rows": [_usage_json(r) for r in rows],
            "total": _usage_json(total) if total else None,
            "lanes": lanes,
        }
        typer.echo(json.dumps(out, indent=2))
        return
    # the token classes are in --json; the table keeps to what fits 80 columns
    headers = [*dims, "attempts", "ok", "failed", "cache hits", "tokens", "cost", "saved"]
    lines = [[*r.group.values(), *_usage_cells(r)] for r in rows]
    if dims and total:
        lines.append(["total", *[""] * (len(dims) - 1), *_usage_cells(total)])
    if total and total.lost:
        lines.append(_unknown_cells(total, max(len(dims), 1)))
    _print_table(f"usage since {start:%Y-%m-%d %H:%M} UTC", headers, lines)
    typer.echo(lanes_line(lanes))


def lanes_line(lanes: dict[str, Any]) -> str:
    """Attempts and cost per lane, and the USD saved against the sync price (issue 18)."""
    sync, batch = lanes["sync"], lanes["batch"]
    return (
        f"lanes: sync {sync['attempts']} attempts ${sync['cost_usd']}; batch "
        f"{batch['attempts']} attempts ${batch['cost_usd']}; saved by batch lanes "
        f"${lanes['saved_usd']}"
    )


def _usage_cells(r: UsageRow) -> list[str]:
    counts = (r.attempts, r.succeeded, r.failed, r.cache_hits, r.total_tokens)
    return [*map(_count, counts), _money(r.cost_usd), _money(r.saved_usd)]


def _unknown_cells(total: UsageRow, width: int) -> list[str]:
    """The `spent_unknown` line: lost calls, booked on the quota at their reservation."""
    label = ["spent_unknown", *[""] * (width - 1)]
    tokens = _count(total.spent_unknown_tokens)
    lost, usd = _count(total.lost), _money(total.spent_unknown_usd)
    return [*label, lost, "", "", "", tokens, usd, ""]


def register(app: typer.Typer) -> None:
    """Add `llmq quota set|show` and `llmq usage` to the `llmq` app."""
    quota_app = typer.Typer(
        help="Tenant budgets: tokens and USD per UTC day and month.", no_args_is_help=True
    )
    quota_app.command("set")(quota_set)
    quota_app.command("show")(quota_show)
    app.add_typer(quota_app, name="quota")
    app.command("usage")(usage)
