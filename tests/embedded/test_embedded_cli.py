"""`llmq demo` and `llmq run` end to end, in a subprocess, with no servers and no LLMQ_* set.

What runs is the real thing: the SQLite ledger under ./.llmq, the in-process broker and Celery
worker, the real provider adapters against the simulator in a thread. The assertions read the
results file, the ledger (through the ledger's own read API) and the simulator's counts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.ledger.db import make_engine, make_sessionmaker, session_scope
from core.ledger.usage_repo import UsageRow, usage_report
from tests.embedded.clean_env import llmq, read_jsonl, write_jsonl

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def _ledger_usage(path: Path) -> dict[tuple[str, str], UsageRow]:
    """Every attempt in the SQLite ledger at `path`, by (provider, model)."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            rows = usage_report(session, EPOCH, by=("provider", "model"))
    finally:
        engine.dispose()
    return {(r.group["provider"], r.group["model"]): r for r in rows}


def test_demo_runs_with_no_servers_and_shows_retries_and_fallback(tmp_path: Path) -> None:
    proc = llmq(["demo"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for heading in ("jobs by state", "attempts by provider and model", "simulator:"):
        assert heading in out
    assert "results: .llmq/demo.results.jsonl" in out
    assert "ledger:  .llmq/ledger.db" in out

    inputs = read_jsonl(tmp_path / ".llmq" / "demo.jsonl")
    results = read_jsonl(tmp_path / ".llmq" / "demo.results.jsonl")
    assert 60 <= len(inputs) <= 120
    assert [r["custom_id"] for r in results] == [i["custom_id"] for i in inputs]
    assert {r["status"] for r in results} == {"succeeded"}
    assert f"succeeded  {len(inputs)}".replace("  ", " ") in " ".join(out.split())

    usage = _ledger_usage(tmp_path / ".llmq" / "ledger.db")
    attempts = sum(r.attempts for r in usage.values())
    assert attempts > len(inputs), "injected failures must cost extra attempts"
    # The cheapest deployment is down: it is tried and fails, and never serves.
    down = usage[("huggingface", "meta-llama/Llama-3.1-8B-Instruct")]
    assert down.failed > 0 and down.succeeded == 0
    # The rate-limited model's jobs fall back to the next model in `fallbacks`.
    assert usage[("anthropic", "claude-haiku-4-5")].succeeded > 0
    served = Counter(r["response"]["provider"] for r in results)
    assert served["local"] > 0 and served["openai"] > 0


def test_run_writes_one_result_per_line_in_order_and_agrees_with_the_simulator(
    tmp_path: Path,
) -> None:
    ids = write_jsonl(tmp_path / "in.jsonl", 2000)
    proc = llmq(["run", "in.jsonl", "-o", "out.jsonl", "--json"], tmp_path, timeout_s=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "simulator" in proc.stderr  # says why no real provider is called
    summary = json.loads(proc.stdout)

    results = read_jsonl(tmp_path / "out.jsonl")
    assert [r["custom_id"] for r in results] == ids
    assert {r["status"] for r in results} == {"succeeded"}
    assert summary["results_written"] == len(ids)
    batch = summary["batch"]
    assert batch["counts"]["succeeded"] == batch["total"] == len(ids)
    assert batch["usage"]["prompt_tokens"] == sum(r["usage"]["prompt_tokens"] for r in results)

    # The ledger on disk and the simulator's own counts tell the same story.
    sim = summary["simulator"]
    usage = _ledger_usage(tmp_path / ".llmq" / "ledger.db")
    assert sum(r.attempts for r in usage.values()) == sim["total_requests"]
    for provider, p_stats in sim["providers"].items():
        for model, m_stats in p_stats["models"].items():
            if not m_stats["served"]:
                continue
            row = usage[(provider, model)]
            assert row.succeeded == m_stats["served"]
            assert row.prompt_tokens == m_stats["prompt_tokens"]
            assert row.completion_tokens == m_stats["completion_tokens"]
    assert sim["total_served"] == len(ids)


def test_run_stays_embedded_when_server_urls_are_exported(tmp_path: Path) -> None:
    """`run` without --external ignores LLMQ_DATABASE_URL / LLMQ_BROKER_URL (documented)."""
    write_jsonl(tmp_path / "small.jsonl", 30)
    proc = llmq(
        ["run", "small.jsonl"],
        tmp_path,
        LLMQ_DATABASE_URL="postgresql+psycopg://127.0.0.1:1/nowhere",
        LLMQ_BROKER_URL="redis://127.0.0.1:1/0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(read_jsonl(tmp_path / "small.jsonl.results.jsonl")) == 30


def test_run_rejects_a_bad_file_and_submits_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"custom_id": "a"}\nnot json\n', encoding="utf-8")
    proc = llmq(["run", "bad.jsonl"], tmp_path)
    assert proc.returncode == 2
    assert "line 1" in proc.stderr and "line 2" in proc.stderr
    assert not (tmp_path / "bad.jsonl.results.jsonl").exists()


@pytest.mark.parametrize("target", ["demo", "test"])
def test_makefile_target_exists(target: str) -> None:
    lines = (REPO / "Makefile").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith(f"{target}:") for line in lines)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_creates_the_venv_then_runs_the_demo(tmp_path: Path) -> None:
    """On a fresh machine (no venv yet, here a venv path that does not exist) `make demo`
    creates the venv, installs llmq into it and runs `llmq demo` without server URLs."""
    venv = tmp_path / "venv"
    proc = subprocess.run(
        ["make", "-n", "demo", f"VENV={venv}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    steps = proc.stdout.splitlines()
    create = next(i for i, s in enumerate(steps) if f"-m venv {venv}" in s)
    install = next(i for i, s in enumerate(steps) if f"{venv}/bin/pip install" in s and "-e ." in s)
    run = next(i for i, s in enumerate(steps) if s.rstrip().endswith(f"{venv}/bin/llmq demo"))
    assert create < install < run
    assert "-u LLMQ_DATABASE_URL" in steps[run] and "-u LLMQ_BROKER_URL" in steps[run]
