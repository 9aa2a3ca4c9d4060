"""Reconciling the ledger with a provider's own books (issue 19): pure comparison, CSV input.

Owns: `compare` (ledger rows vs the provider's rows per model and UTC day: which of tokens by
class and cost differ beyond a tolerance) and `read_csv` (a provider's usage export for those
without a usage API). Rows are `usage_reports.ReportRow`s on both sides. Must not: do I/O
beyond reading the CSV it is given, read the clock, or know a provider (the adapter's
`usage_report` fetches; `llmq reconcile` wires it).

A CSV export needs the columns `model`, `day` (YYYY-MM-DD), `prompt_tokens` (every input
token, cache reads and writes included), `completion_tokens` (reasoning included) and
`cost_usd` (may be empty); `cached_tokens` and `cache_write_tokens` are compared when present.
A bad line is reported as `FILE line N: column: reason`, and nothing is compared.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from core.errors import ConfigError
from workers.providers.usage_reports import ReportRow

TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens")
FIELDS = (*TOKEN_FIELDS, "cost_usd")
REQUIRED_COLUMNS = ("model", "day", "prompt_tokens", "completion_tokens", "cost_usd")
USD_QUANTUM = Decimal("0.000001")  # providers report cost to the micro-dollar at best


@dataclass(frozen=True, slots=True)
class Difference:
    """One field of one (model, day) on which the ledger and the provider disagree."""

    model: str
    day: date
    field: str
    ledger: int | Decimal | None
    provider: int | Decimal | None

    @property
    def delta(self) -> int | Decimal | None:
        if self.ledger is None or self.provider is None:
            return None
        return self.ledger - self.provider


def _within(a: int | Decimal, b: int | Decimal, tolerance: Decimal) -> bool:
    return abs(Decimal(a) - Decimal(b)) <= tolerance * max(abs(Decimal(a)), abs(Decimal(b)))


def _value(row: ReportRow | None, field: str) -> int | Decimal | None:
    if row is None:
        return Decimal(0) if field == "cost_usd" else 0
    value = getattr(row, field)
    if field == "cost_usd" and value is not None:
        return Decimal(value).quantize(USD_QUANTUM)
    return value


def compare(
    ledger: Iterable[ReportRow],
    provider: Iterable[ReportRow],
    fields: Sequence[str] = FIELDS,
    tolerance: Decimal = Decimal(0),
) -> list[Difference]:
    """Every (model, day, field) whose values differ by more than `tolerance` (a fraction of
    the larger value; 0 = exact, cost compared to the micro-dollar). A model or day on one
    side only differs from zero on the other. A provider cost of None (not reported) is not
    compared."""
    ours = {(r.model, r.day): r for r in ledger}
    theirs = {(r.model, r.day): r for r in provider}
    out: list[Difference] = []
    for key in sorted(ours.keys() | theirs.keys(), key=lambda k: (k[1], k[0])):
        mine, other = ours.get(key), theirs.get(key)
        for field in fields:
            a, b = _value(mine, field), _value(other, field)
            if b is None and other is not None:
                continue  # the provider did not report it
            if a is None or b is None or not _within(a, b, tolerance):
                out.append(Difference(key[0], key[1], field, a, b))
    return out


def _int(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{where}: not a whole number: {text!r}") from None
    if value < 0:
        raise ConfigError(f"{where}: negative: {value}")
    return value


def _row(line: dict[str, str], where: str, columns: Sequence[str]) -> ReportRow:
    model = (line.get("model") or "").strip()
    if not model:
        raise ConfigError(f"{where}: model: empty")
    try:
        day = date.fromisoformat((line.get("day") or "").strip()[:10])
    except ValueError:
        raise ConfigError(f"{where}: day: not a YYYY-MM-DD date: {line.get('day')!r}") from None
    counts = {
        f: _int(line[f].strip() or "0", f"{where}: {f}") for f in TOKEN_FIELDS if f in columns
    }
    usd_text = (line.get("cost_usd") or "").strip()
    try:
        usd = Decimal(usd_text) if usd_text else None
    except InvalidOperation:
        raise ConfigError(f"{where}: cost_usd: not a number: {usd_text!r}") from None
    if (
        counts.get("cached_tokens", 0) + counts.get("cache_write_tokens", 0)
        > counts["prompt_tokens"]
    ):
        raise ConfigError(f"{where}: cached_tokens + cache_write_tokens exceed prompt_tokens")
    return ReportRow(model, day, cost_usd=usd, **counts)


def read_csv(path: Path) -> tuple[list[ReportRow], tuple[str, ...]]:
    """The export's rows, summed per (model, day), and the fields it lets us compare."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or ()]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ConfigError(f"{path} line 1: missing column(s) {', '.join(missing)}")
        reader.fieldnames = columns
        rows: dict[tuple[str, date], ReportRow] = {}
        for n, line in enumerate(reader, start=2):
            row = _row(line, f"{path} line {n}", columns)
            _add(rows, row)
    fields = tuple(f for f in FIELDS if f in columns)
    return sorted(rows.values(), key=lambda r: (r.day, r.model)), fields


def _add(rows: dict[tuple[str, date], ReportRow], row: ReportRow) -> None:
    found = rows.get((row.model, row.day))
    if found is None:
        rows[(row.model, row.day)] = row
        return
    for f in TOKEN_FIELDS:
        setattr(found, f, getattr(found, f) + getattr(row, f))
    if row.cost_usd is not None:
        found.cost_usd = (found.cost_usd or Decimal(0)) + row.cost_usd
