"""Figures, the printed table and the JSON file of a bench run.

Owns: `Figure` (one measured value beside its goal), the machine description, rendering the
table and writing bench/results/latest.json. Must not: measure anything itself.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    """One line of the table: `value` (in `unit`) against `goal` (None = informational)."""

    scenario: str
    name: str
    value: float | None
    unit: str
    goal: str = ""
    ok: bool | None = None  # None: no goal, or not measurable
    note: str = ""

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        v = self.value
        text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
        return f"{text} {self.unit}".strip()


@dataclass
class Report:
    mode: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def table(self) -> str:
        rows = [("scenario", "figure", "value", "goal", "")]
        for f in self.figures:
            mark = {True: "PASS", False: "MISS", None: ""}[f.ok]
            rows.append((f.scenario, f.name, f.shown(), f.goal, mark))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = []
        for i, row in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        notes = [f"  [{f.scenario}/{f.name}] {f.note}" for f in self.figures if f.note]
        failed = [f"  {name}: {err}" for name, err in self.errors.items()]
        out = "\n".join(lines)
        if notes:
            out += "\nnotes:\n" + "\n".join(notes)
        if failed:
            out += "\nscenarios that failed:\n" + "\n".join(failed)
        return out

    def markdown(self) -> str:
        lines = ["| scenario | figure | value | goal | |", "|---|---|---|---|---|"]
        for f in self.figures:
            mark = {True: "pass", False: "**miss**", None: ""}[f.ok]
            lines.append(f"| {f.scenario} | {f.name} | {f.shown()} | {f.goal} | {mark} |")
        return "\n".join(lines)

    def write(self, path: Path | None = None) -> Path:
        path = path or RESULTS_DIR / "latest.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "mode": self.mode,
            "started": self.started,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "figures": [asdict(f) for f in self.figures],
            "details": self.details,
            "errors": self.errors,
            "markdown": self.markdown(),
        }
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        return path


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine was."""
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "loadavg_1_5_15": os.getloadavg(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        wanted = ("Model name", "CPU(s)", "Thread(s) per core", "Hypervisor vendor")
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in wanted:
                info[key.strip()] = value.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def goal_at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def goal_at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit
