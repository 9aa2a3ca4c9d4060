"""`llmq reconcile` (issue 19): the ledger against the simulator's own books.

The simulator bills every call per model and day and serves OpenAI's organization usage/costs
API and Anthropic's usage/cost reports from those books; `llmq reconcile` reads them through
the adapters and must find zero difference after real pipeline runs with cached, cache-write
and reasoning tokens on. A CSV export covers providers without a usage API. The comparison
itself is table-tested at the end.
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from helpers.jobs import seed
from helpers.llm_config import model, write_llm_config
from sqlalchemy import text
from typer.testing import CliRunner

from llmq.cli import app
from workers.pipeline import run_job
from workers.providers.usage_reports import ReportRow
from workers.reconcile import Difference, compare

SHARES = {"cached_share": 0.4, "cache_write_share": 0.2, "reasoning_share": 0.5}
MODELS = [
    model("o", "openai", model_id="gpt-4o-mini"),
    model("a", "anthropic", model_id="claude-haiku-4-5"),
    model("c", "cohere", model_id="command-r-08-2024"),
]


def run_all(rt, ids) -> None:  # type: ignore[no-untyped-def]
    for jid in ids:
        for _ in range(12):
            if run_job(jid, rt, datetime.now(UTC)).countdown_s is None:
                break


@pytest.fixture()
def books(make_runtime, sim, clean_db, tmp_path):  # type: ignore[no-untyped-def]
    """Jobs run on three providers with usage classes on; returns (config path, env)."""
    for provider in ("openai", "anthropic", "cohere"):
        sim.configure(provider, **SHARES)
    rt = make_runtime(MODELS)
    for name in ("o", "a", "c"):
        _, ids = seed(rt.engine, 3, name, prompt=f"{name} shared context {{i}} " + "ctx " * 300)
        run_all(rt, ids)
    config = write_llm_config(tmp_path / "reconcile.yaml", sim.url, MODELS)
    return rt, config, {"LLMQ_DATABASE_URL": clean_db}


def reconcile(env, *args: str):  # type: ignore[no-untyped-def]
    today = datetime.now(UTC).date().isoformat()
    return CliRunner().invoke(app, ["reconcile", "--since", today, *args], env=env)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_reconcile_against_the_simulator_finds_no_difference(books, provider) -> None:  # type: ignore[no-untyped-def]
    _, config, env = books
    out = reconcile(env, "--provider", provider, "--config", str(config))
    assert out.exit_code == 0, out.output
    assert "1 ledger rows, 1 provider rows" in out.output and "no differences" in out.output


def test_a_ledger_that_lost_tokens_is_caught_and_exits_non_zero(books) -> None:  # type: ignore[no-untyped-def]
    rt, config, env = books
    with rt.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE attempts SET cached_tokens = cached_tokens - 5, cost_usd = cost_usd * 2 "
                "WHERE ctid = (SELECT ctid FROM attempts WHERE provider = 'anthropic' LIMIT 1)"
            )
        )
    out = reconcile(env, "--provider", "anthropic", "--config", str(config))
    assert out.exit_code == 1, out.output
    assert "cached_tokens: ledger" in out.output and "(difference -5)" in out.output
    assert "cost_usd: ledger" in out.output and "2 difference(s)" in out.output
    # a tolerance wide enough for the doubled cost lets both through
    loose = reconcile(env, "--provider", "anthropic", "--config", str(config), "--tolerance", "0.9")
    assert loose.exit_code == 0, loose.output


def _export(sim, provider: str, path: Path) -> Path:  # type: ignore[no-untyped-def]
    """The provider's usage export, as a CSV of what the simulator billed."""
    rows = [r for r in sim.stats()["billed"] if r["provider"] == provider]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "day", "prompt_tokens", "completion_tokens", "cached_tokens",
                    "cost_usd"])  # fmt: skip
        for r in rows:
            w.writerow([r["model"], r["day"], r["prompt_tokens"], r["completion_tokens"],
                        r["cached_tokens"], r["cost_usd"]])  # fmt: skip
    return path


def test_a_csv_export_reconciles_a_provider_without_a_usage_api(books, sim, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, _, env = books
    path = _export(sim, "cohere", tmp_path / "cohere.csv")
    out = reconcile(env, "--provider", "cohere", "--file", str(path))
    assert out.exit_code == 0, out.output
    assert "no differences" in out.output
    without = reconcile(env, "--provider", "cohere")
    assert without.exit_code == 2 and "--file" in without.output


def test_a_bad_csv_line_is_named_and_nothing_is_compared(books, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, _, env = books
    path = tmp_path / "bad.csv"
    path.write_text(
        "model,day,prompt_tokens,completion_tokens,cost_usd\n"
        "command-r-08-2024,2026-01-01,10,5,0.1\n"
        "command-r-08-2024,2026-01-01,ten,5,0.1\n"
    )
    out = reconcile(env, "--provider", "cohere", "--file", str(path))
    assert out.exit_code == 2
    assert f"{path} line 3: prompt_tokens: not a whole number: 'ten'" in out.output
    path.write_text("model,day,prompt_tokens\n")
    out = reconcile(env, "--provider", "cohere", "--file", str(path))
    assert out.exit_code == 2 and "line 1: missing column(s) completion_tokens, cost_usd" in (
        out.output
    )


# ---- the comparison, table-driven ---------------------------------------------------------

D = date(2026, 5, 1)


def row(model: str = "m", **kw: object) -> ReportRow:
    values: dict[str, object] = {
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "cost_usd": Decimal("0.5"),
    }
    values.update(kw)
    return ReportRow(model, D, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ledger", "provider", "tolerance", "expected"),
    [
        ([row()], [row()], "0", []),
        ([row()], [row(prompt_tokens=101)], "0", [Difference("m", D, "prompt_tokens", 100, 101)]),
        ([row()], [row(prompt_tokens=101)], "0.01", []),
        ([row()], [row(cost_usd=Decimal("0.5000004"))], "0", []),  # below a micro-dollar
        ([row()], [row(cost_usd=Decimal("0.500001"))], "0", [
            Difference("m", D, "cost_usd", Decimal("0.500000"), Decimal("0.500001"))]),
        ([row()], [row(cost_usd=None)], "0", []),  # the provider reports no cost
        ([row(cost_usd=None)], [row()], "0", [
            Difference("m", D, "cost_usd", None, Decimal("0.500000"))]),  # unpriced here
        ([row()], [], "0", [
            Difference("m", D, "prompt_tokens", 100, 0),
            Difference("m", D, "completion_tokens", 10, 0),
            Difference("m", D, "cost_usd", Decimal("0.500000"), Decimal(0))]),
        ([], [row("x", cached_tokens=7, prompt_tokens=0, completion_tokens=0,
                  cost_usd=Decimal(0))], "0", [
            Difference("x", D, "cached_tokens", 0, 7)]),
    ],
)  # fmt: skip
def test_compare(ledger, provider, tolerance, expected) -> None:  # type: ignore[no-untyped-def]
    assert compare(ledger, provider, tolerance=Decimal(tolerance)) == expected
