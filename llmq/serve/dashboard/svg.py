"""Inline SVG charts: a stacked bar per day (spend, tokens) and a job's attempt timeline.

Owns: pure functions from numbers to markup, no I/O and no JavaScript; each bar has a
<title> so hovering it shows its figure. Must not: query or format money for comparison (the
tables beside each chart carry the exact figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

PALETTE = ("#3b7ddd", "#e8833a", "#42a66a", "#c44e9a", "#8a6fd1", "#d4b12f", "#5bb5c7", "#999")
W, H, PAD_L, PAD_B, PAD_T = 860, 250, 70, 36, 24


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    while magnitude > value and magnitude > 1e-9:
        magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def stacked_bars(
    days: Sequence[date], series: Mapping[str, Sequence[float]], unit: str, tid: str
) -> str:
    """One bar per day, stacked by series key in the order given, with a legend."""
    top = _nice_max(max((sum(v[i] for v in series.values()) for i in range(len(days))), default=0))
    plot_w, plot_h = W - PAD_L - 10, H - PAD_B - PAD_T
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1.0)
    parts = [f'<svg id="{escape(tid)}" width="{W}" height="{H + 24}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H + 24}">']  # fmt: skip
    for k in range(5):  # grid and y labels
        y = PAD_T + plot_h * (1 - k / 4)
        parts.append(
            f'<line x1="{PAD_L}" x2="{W - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ec"/>'
        )
        parts.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_label(top * k / 4)}</text>")  # fmt: skip
    for i, day in enumerate(days):
        x = PAD_L + i * slot + (slot - bar_w) / 2
        base = 0.0
        for j, (key, values) in enumerate(series.items()):
            v = values[i]
            if v <= 0:
                continue
            h = plot_h * v / top
            y = PAD_T + plot_h * (1 - (base + v) / top)
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{color(j)}"><title>{day} {escape(key)}: {v:,.8g} {escape(unit)}</title></rect>'
            )
            base += v
        if len(days) <= 16 or i % max(len(days) // 10, 1) == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{H - PAD_B + 14}" '
                         f'text-anchor="middle">{day:%m-%d}</text>')  # fmt: skip
    x = PAD_L
    for j, key in enumerate(series):
        parts.append(f'<rect x="{x}" y="{H + 6}" width="10" height="10" fill="{color(j)}"/>'
                     f'<text x="{x + 14}" y="{H + 15}">{escape(key)}</text>')  # fmt: skip
        x += 24 + 7 * len(key)
    parts.append(f'<text x="4" y="12">{escape(unit)}</text></svg>')
    return "".join(parts)


def _label(v: float) -> str:
    if v == 0:
        return "0"
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def timeline(steps: Sequence[tuple[str, int, int, str]], tid: str = "timeline") -> str:
    """A job's attempts left to right: for each (label, waited ms, call ms, outcome) a grey
    segment for the wait before it and a coloured one for the call."""
    total = sum(w + c for _, w, c, _ in steps) or 1
    width, row_h = W - 150, 22
    parts = [f'<svg id="{escape(tid)}" width="{W}" height="{row_h * len(steps) + 10}" '
             f'xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    x = 0.0
    for i, (label, waited, call, outcome) in enumerate(steps):
        y = 4 + i * row_h
        fill = "#42a66a" if outcome in ("succeeded", "cache_hit") else "#d64545"
        ww, cw = width * waited / total, max(width * call / total, 2.0)
        parts.append(f'<text x="0" y="{y + 13}">{escape(label)}</text>')
        parts.append(f'<rect x="{140 + x:.1f}" y="{y}" width="{ww:.1f}" height="14" fill="#c9ced8">'
                     f"<title>waited {waited} ms</title></rect>")  # fmt: skip
        parts.append(f'<rect x="{140 + x + ww:.1f}" y="{y}" width="{cw:.1f}" height="14" '
                     f'fill="{fill}"><title>{escape(outcome)}, {call} ms</title></rect>')  # fmt: skip
        x += ww + cw
    parts.append("</svg>")
    return "".join(parts)
