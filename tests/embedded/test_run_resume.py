"""Issue 20 item 14: `llmq run --resume` continues an interrupted run from the ledger.

A real `llmq run` subprocess is interrupted with SIGINT (Ctrl-C) once some jobs are done; the
SQLite ledger keeps every job. `llmq run FILE --resume` then runs only the unfinished ones and
writes the results file: every line exactly once, every job succeeded exactly once (no job
paid twice), one batch in the ledger.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.embedded.clean_env import LLMQ, clean_env, llmq, read_jsonl, write_jsonl

LINES = 600


def _succeeded(ledger: Path) -> int:
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM jobs WHERE state = 'succeeded'").fetchone()[0]
    except sqlite3.Error:  # not created or not migrated yet
        return 0


def _interrupt_after(cwd: Path, done: int, timeout_s: float = 180) -> subprocess.CompletedProcess:
    ledger = cwd / ".llmq" / "ledger.db"
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [LLMQ, "run", "in.jsonl", "-o", "out.jsonl", "-c", "4"],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout_s
    while _succeeded(ledger) < done:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_interrupted_run_resumes_its_unfinished_jobs_once(tmp_path: Path) -> None:
    ids = write_jsonl(tmp_path / "in.jsonl", LINES)
    first = _interrupt_after(tmp_path, done=40)
    assert first.returncode == 130, first.stderr[-3000:]
    assert "Traceback" not in first.stderr
    ledger = tmp_path / ".llmq" / "ledger.db"
    left = LINES - _succeeded(ledger)
    assert left > 0, "interrupted too late to test anything"

    proc = llmq(["run", "in.jsonl", "-o", "out.jsonl", "--resume"], tmp_path, timeout_s=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming batch" in proc.stderr

    results = read_jsonl(tmp_path / "out.jsonl")
    assert [r["custom_id"] for r in results] == ids  # each line once, in input order
    assert {r["status"] for r in results} == {"succeeded"}
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT count(*) FROM batches").fetchone()[0] == 1
        paid = db.execute(
            "SELECT job_id, count(*) FROM attempts WHERE outcome = 'succeeded' GROUP BY job_id"
        ).fetchall()
    assert len(paid) == LINES
    assert {n for _, n in paid} == {1}, "a job was paid twice"


def test_resume_without_an_earlier_run_is_refused(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", 3)
    proc = llmq(["run", "in.jsonl", "--resume"], tmp_path)
    assert proc.returncode == 2 and "no ledger" in proc.stderr, proc.stderr
    write_jsonl(tmp_path / "other.jsonl", 2)
    assert llmq(["run", "other.jsonl"], tmp_path).returncode == 0
    proc = llmq(["run", "in.jsonl", "--resume"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "no earlier run of in.jsonl" in proc.stderr
