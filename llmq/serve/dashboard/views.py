"""The dashboard's page bodies, built from ledger values: batch list, batch, job, spend and
providers.

Owns: turning read models into markup (tables, figures with stable element ids the browser
test reads, the charts). Pure: no I/O. Must not: decide visibility (routes do, through
`auth`), or show prompt or result text (only states, counts, money, tokens and the error kind
and message the ledger keeps, already scrubbed of secrets).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from core.ledger.batch_reads_repo import BatchStatus, JobTimeline
from core.ledger.dashboard_reads_repo import BatchListRow, JobFigure, ModelCost
from core.ledger.quota_report_repo import WindowReport
from core.ledger.spend_reads_repo import SpendCell
from llmq.serve.dashboard import svg
from llmq.serve.dashboard.html import age, esc, kpi, post_button, progress, state_badge, table, usd
from llmq.serve.dashboard.providers_view import ProviderView
from schemas.job import BatchState, JobState


def batches_body(rows: Sequence[BatchListRow], show_tenant: bool) -> str:
    head = ["batch", *(["tenant"] if show_tenant else []), "state", "progress", "failed",
            "cost USD", "age"]  # fmt: skip
    body = [
        [
            f'<a href="/batches/{b.id}">{esc(b.name or str(b.id)[:8])}</a>',
            *([esc(b.tenant)] if show_tenant else []),
            state_badge(b.state),
            progress(b.done, b.total),
            str(b.failed),
            usd(b.cost_usd),
            age(b.created_at),
        ]
        for b in rows
    ]
    n = len(head)
    return table(head, body, numeric=(n - 3, n - 2), tid="batches")


def _job_rows(jobs: Sequence[JobFigure]) -> list[list[str]]:
    return [
        [
            f'<a href="/jobs/{j.id}">{esc(j.custom_id)}</a>',
            state_badge(j.state),
            str(j.attempts),
            f"{j.latency_ms:,}",
            f"{j.waited_ms:,}",
            usd(j.cost_usd),
        ]
        for j in jobs
    ]


def batch_body(  # noqa: PLR0913 - one page's independent parts
    st: BatchStatus,
    models: Sequence[ModelCost],
    slowest: Sequence[JobFigure],
    costliest: Sequence[JobFigure],
    csrf: str,
    notice: str = "",
) -> str:
    counts = table(
        ["state", "jobs"],
        [[state_badge(s), f'<span id="count-{s}">{st.counts[s]}</span>'] for s in JobState],
        numeric=(1,),
        tid="counts",
    )
    providers = table(
        ["provider", "jobs served", "attempts", "cost USD"],
        [
            [esc(p), str(s.jobs), str(s.attempts), usd(s.cost_usd)]
            for p, s in sorted(st.providers.items())
        ],  # fmt: skip
        numeric=(1, 2, 3),
        tid="providers",
    )
    per_model = table(
        ["provider", "model", "attempts", "cost USD"],
        [[esc(m.provider), esc(m.model), str(m.attempts), usd(m.cost_usd)] for m in models],
        numeric=(2, 3),
        tid="models",
    )
    job_head = ["job", "state", "attempts", "call ms", "waited ms", "cost USD"]
    actions = []
    if st.state != BatchState.CANCELLED and not st.settled or st.parked:
        actions.append(post_button(f"/batches/{st.batch_id}/cancel", "Cancel batch", csrf))
    if st.parked:
        actions.append(post_button(f"/batches/{st.batch_id}/resume", "Resume parked jobs", csrf))
    note = f'<p id="notice">{esc(notice)}</p>' if notice else ""
    return "".join(
        [
            note,
            '<div class="kpis">',
            kpi("state", state_badge(st.state), "state"),
            kpi("tenant", esc(st.tenant), "tenant"),
            kpi("progress", progress(st.done, st.total), "progress"),
            kpi("cost USD", usd(st.cost_usd), "cost-usd"),
            kpi("prompt tokens", str(st.prompt_tokens), "prompt-tokens"),
            kpi("completion tokens", str(st.completion_tokens), "completion-tokens"),
            kpi("cache hits", str(st.cache_hits), "cache-hits"),
            kpi("cache saved USD", usd(st.cache_saved_usd), "cache-saved"),
            "</div>",
            f"<p>{''.join(actions)}</p>" if actions else "",
            "<h2>Jobs by state</h2>",
            counts,
            "<h2>Cost per provider</h2>",
            providers,
            "<h2>Cost per provider and model</h2>",
            per_model,
            "<h2>Slowest jobs</h2>",
            table(job_head, _job_rows(slowest), numeric=(2, 3, 4, 5), tid="slowest"),
            "<h2>Costliest jobs</h2>",
            table(job_head, _job_rows(costliest), numeric=(2, 3, 4, 5), tid="costliest"),
        ]
    )


def job_body(t: JobTimeline) -> str:
    j = t.job
    err = j.get("error") or {}
    head = f'<p>batch <a href="/batches/{esc(j["batch_id"])}">{esc(j["batch_id"])}</a> · ' \
        f'line {esc(j["custom_id"])} · model {esc(j["model"])} · {state_badge(j["state"])}</p>'  # fmt: skip
    if err:
        head += (
            f'<p class="err" id="job-error">{esc(err.get("type"))}: {esc(err.get("message"))}</p>'
        )
    rows = [
        [
            str(a["attempt_no"]),
            esc(a["deployment"]),
            state_badge(a["outcome"]),
            esc(a["http_status"] or "-"),
            esc(a["error_kind"] or "-"),
            esc(a["error_message"] or ""),
            esc(f"{a['started_at']:%Y-%m-%d %H:%M:%S}"),
            f"{a['waited_ms'] or 0:,}",
            f"{a['latency_ms'] or 0:,}",
            str((a["prompt_tokens"] or 0) + (a["completion_tokens"] or 0)),
            usd(a["cost_usd"]),
        ]
        for a in t.attempts
    ]
    steps = [
        (f"#{a['attempt_no']} {a['deployment']}"[:22], int(a["waited_ms"] or 0),
         int(a["latency_ms"] or 0), str(a["outcome"]))
        for a in t.attempts
    ]  # fmt: skip
    head_cols = ["#", "deployment", "outcome", "HTTP", "error kind", "why", "started (UTC)",
                 "waited ms", "call ms", "tokens", "cost USD"]  # fmt: skip
    return "".join(
        [
            head,
            "<h2>Attempt timeline</h2>",
            svg.timeline(steps) if steps else "",
            table(head_cols, rows, numeric=(7, 8, 9, 10), tid="attempts"),
        ]
    )


def _series(days: Sequence[date], cells: Sequence[SpendCell], field: str) -> dict[str, list[float]]:
    index = {d: i for i, d in enumerate(days)}
    out: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(days))
    for c in cells:
        if c.day in index:
            out[c.key][index[c.day]] += float(getattr(c, field))
    return dict(sorted(out.items()))


def spend_body(
    days: Sequence[date], cells: Sequence[SpendCell], dim: str, filters: str,
    quota: Sequence[WindowReport],
) -> str:  # fmt: skip
    zero = Decimal(0)
    total_cost = sum((c.cost_usd for c in cells), zero)
    total_saved = sum((c.saved_usd for c in cells), zero)
    by_key: dict[str, list[Any]] = {}
    for c in cells:
        row = by_key.setdefault(c.key, [0, 0, zero, 0, zero])
        for i, v in enumerate((c.attempts, c.tokens, c.cost_usd, c.cache_hits, c.saved_usd)):
            row[i] += v
    totals = table(
        [dim, "attempts", "tokens", "cost USD", "cache hits", "saved USD"],
        [
            [esc(k), str(a), str(t), usd(c), str(h), usd(s)]
            for k, (a, t, c, h, s) in sorted(by_key.items())
        ],  # fmt: skip
        numeric=(1, 2, 3, 4, 5),
        tid="spend-totals",
    )
    return "".join(
        [
            filters,
            '<div class="kpis">',
            kpi("cost USD", usd(total_cost), "spend-cost"),
            kpi("tokens", str(sum(c.tokens for c in cells)), "spend-tokens"),
            kpi("attempts", str(sum(c.attempts for c in cells)), "spend-attempts"),
            kpi("cache hits", str(sum(c.cache_hits for c in cells)), "spend-cache-hits"),
            kpi("saved by the cache USD", usd(total_saved), "spend-saved"),
            "</div>",
            f"<h2>Cost per day by {esc(dim)} (USD)</h2>",
            svg.stacked_bars(days, _series(days, cells, "cost_usd"), "USD", "chart-cost"),
            f"<h2>Tokens per day by {esc(dim)}</h2>",
            svg.stacked_bars(days, _series(days, cells, "tokens"), "tokens", "chart-tokens"),
            "<h2>Totals</h2>",
            totals,
            "<h2>Quota headroom</h2>",
            quota_table(quota),
        ]
    )


def quota_table(quota: Sequence[WindowReport]) -> str:
    def lim(v: Any, money: bool) -> str:
        return "unlimited" if v is None else (usd(v) if money else str(v))

    rows = [
        [esc(q.tenant), esc(q.period), esc(q.window_start), usd(q.used_usd), usd(q.reserved_usd),
         lim(q.limit_usd, True), lim(q.remaining_usd, True), str(q.used_tokens),
         lim(q.limit_tokens, False), lim(q.remaining_tokens, False)]
        for q in quota
    ]  # fmt: skip
    return table(
        ["tenant", "window", "start", "spent USD", "reserved USD", "limit USD", "headroom USD",
         "tokens", "token limit", "token headroom"],
        rows, numeric=range(3, 10), tid="quota",
    )  # fmt: skip


def providers_body(rows: Sequence[ProviderView], warning: str) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.0%}"

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    def room(used: int | None, limit: int | None) -> str:
        if limit is None:
            return f"{used if used is not None else '-'} / no limit"
        return f"{used if used is not None else '?'} / {limit} ({max(limit - (used or 0), 0)} left)"

    body = [
        [esc(r.provider), esc(r.deployment), esc(r.model), state_badge(r.circuit),
         f"{r.cooldown_s:.0f} s" if r.cooldown_s else "-",
         str(r.calls.calls if r.calls else 0), pct(r.calls.success_rate if r.calls else None),
         ms(r.calls.p50_ms if r.calls else None), ms(r.calls.p95_ms if r.calls else None),
         room(r.rpm_used, r.rpm_limit), room(r.tpm_used, r.tpm_limit)]
        for r in rows
    ]  # fmt: skip
    warn = f'<p class="err">{esc(warning)}</p>' if warning else ""
    return warn + table(
        ["provider", "deployment", "model", "circuit", "cooldown", "calls (1 h)", "success",
         "p50 ms", "p95 ms", "requests / rpm", "tokens / tpm"],
        body, numeric=(5, 6, 7, 8), tid="deployments",
    ) + '<p class="muted">Calls, success and latency: the ledger\'s last hour. Circuit, ' \
        "cooldown and the rate window: the health store the workers share.</p>"  # fmt: skip
