"""HTML building blocks of the dashboard: the page frame, tables, figures, forms.

Owns: markup and the one stylesheet (inline: pages work offline, nothing is fetched from a
CDN, and no JavaScript is needed). Every value passes through `esc`. Must not: query
anything or decide what a viewer may see (`pages` and `auth` do).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from core.money import money_str

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfd6e4;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .who{margin-left:auto;color:#9aa3b5}header form{display:inline}
main{padding:16px 24px;max-width:1200px}h1{font-size:20px;margin:8px 0 16px}
h2{font-size:16px;margin:24px 0 8px}table{border-collapse:collapse;background:#fff;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e3e6ec;white-space:nowrap}
th{background:#eef0f4;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{width:140px;height:10px;background:#e3e6ec;border-radius:5px;overflow:hidden;display:inline-block}
.bar span{display:block;height:100%;background:#3b7ddd}
.state{padding:1px 8px;border-radius:9px;background:#e3e6ec;font-size:12px}
.state.done,.state.succeeded,.state.closed{background:#d5f0dc}
.state.cancelled,.state.failed,.state.open{background:#f7d6d6}
.state.active,.state.running,.state.half_open{background:#fff0c2}
.kpis{display:flex;gap:12px;flex-wrap:wrap}.kpi{background:#fff;padding:10px 14px;border:1px solid #e3e6ec}
.kpi b{display:block;font-size:18px}.muted{color:#6b7486}.err{color:#b42318}
button{padding:5px 12px;border:1px solid #9aa3b5;background:#fff;cursor:pointer}
form.inline{display:inline}svg text{font:11px system-ui,sans-serif;fill:#1d2330}
"""

NAV = (("/", "Batches"), ("/spend", "Spend"), ("/providers", "Providers"))


def esc(value: object) -> str:
    return escape("" if value is None else str(value))


def usd(value: Decimal | None) -> str:
    """Money as the CLI's JSON shows it: 8 decimals, so a page and `llmq status` agree."""
    return money_str(value) or "-"


def age(then: datetime, now: datetime | None = None) -> str:
    seconds = ((now or datetime.now(UTC)) - then).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{max(int(seconds), 0)} s"


def state_badge(state: str | None) -> str:
    return f'<span class="state {esc(state)}">{esc(state or "-")}</span>'


def progress(done: int, total: int) -> str:
    pct = 100 * done / total if total else 100
    return (
        f'<span class="bar" title="{done} of {total}"><span style="width:{pct:.1f}%"></span>'
        f"</span> {done}/{total}"
    )


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Iterable[int] = (),
    tid: str = "",
) -> str:
    """A table of already escaped cells; `numeric` column indexes are right-aligned."""
    right = set(numeric)
    cls = [' class="n"' if i in right else "" for i in range(len(headers))]
    head = "".join(f"<th{cls[i]}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls[i]}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    ident = f' id="{esc(tid)}"' if tid else ""
    empty = "" if body else f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>'
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}{empty}</tbody></table>"


def kpi(label: str, value: str, tid: str) -> str:
    return f'<div class="kpi"><span class="muted">{esc(label)}</span><b id="{esc(tid)}">{value}</b></div>'


def post_button(action: str, label: str, csrf: str) -> str:
    return (
        f'<form class="inline" method="post" action="{esc(action)}">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        f'<button type="submit">{esc(label)}</button></form>'
    )


def page(title: str, body: str, *, path: str = "/", who: str = "", csrf: str = "") -> str:
    """The whole document: header with navigation and the viewer, then `body`."""
    nav = "".join(
        f'<a href="{href}"{" class=on" if href == path else ""}>{esc(name)}</a>'
        for href, name in NAV
    )
    out = post_button("/logout", "Sign out", csrf) if csrf else ""
    user = f'<span class="who">{esc(who)}</span>{out}' if who else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · llmq</title><style>{CSS}</style></head><body>"
        f"<header><b>llmq</b>{nav}{user}</header><main><h1>{esc(title)}</h1>{body}</main>"
        "</body></html>"
    )


def login_form(message: str = "", next_path: str = "/") -> str:
    err = f'<p class="err" id="login-error">{esc(message)}</p>' if message else ""
    return page(
        "Sign in",
        f"{err}<form method=post action=/login><input type=hidden name=next "
        f'value="{esc(next_path)}"><p><label>API key <input type=password name=key '
        "size=60 autocomplete=off required autofocus></label></p>"
        "<p><button type=submit>Sign in</button></p></form>"
        '<p class="muted">The same keys as the API (<code>llmq keys create</code>). '
        "The key is checked once; the browser keeps only a signed session cookie.</p>",
        path="/login",
    )
