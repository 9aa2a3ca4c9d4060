"""Peak RSS of `llmq run` (embedded) by input size: is memory flat in the number of lines?

Not a test (no assertion): prints one figure per size. For each N it writes N generated lines
(bench.submit_bench's realistic ~300-byte mix), starts `llmq run` in a fresh folder, samples
its peak RSS (VmHWM, Linux) and stops it with SIGINT (Ctrl-C; the ledger keeps every job)
once all N jobs are stored and `--settle` more jobs have finished: by then parsing, the
insert and the queue feeding have all happened, which is where memory grew with N before.

    python -m bench.run_memory                       # 10,000 and 50,000 lines
    python -m bench.run_memory --lines 1000 200000
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.params import Params
from bench.report import Figure, Report, goal_at_most
from bench.submit_bench import write_lines

# "flat" for a whole `llmq run` (parser, insert, feeder, worker, simulator in one process): a
# 30x larger file within 1.5x of the small one's peak (before: 2.3x at 60k lines, ~1 GB at 200k).
RUN_FLAT = 1.5
LLMQ = str(Path(sys.executable).with_name("llmq"))


def _counts(ledger: Path) -> tuple[int, int]:
    """(jobs stored, jobs finished) in the ledger, (0, 0) before it exists."""
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute(
                "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded') FROM jobs"
            ).fetchone()
            return int(row[0]), int(row[1])
    except sqlite3.Error:
        return 0, 0


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (VmHWM in /proc), MB; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(lines: int, settle: int, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `llmq run` on `lines` generated lines; returns peak RSS (MB) and seconds."""
    with tempfile.TemporaryDirectory(prefix="llmq-runmem-") as tmp:
        cwd = Path(tmp)
        write_lines(cwd / "in.jsonl", lines)
        started = time.monotonic()
        proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [LLMQ, "run", "in.jsonl", "-c", "32"],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # a shell's background job ignores SIGINT, and children inherit that: restore it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
        )
        peak = 0.0
        stored_at = None
        try:
            while proc.poll() is None:
                peak = max(peak, _peak_rss_mb(proc.pid))
                stored, done = _counts(cwd / ".llmq" / "ledger.db")
                if stored >= lines and stored_at is None:
                    stored_at = time.monotonic() - started
                if stored >= lines and done >= min(lines, settle):
                    break
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return {"lines": lines, "peak_rss_mb": round(peak, 1),
                "stored_s": round(stored_at or 0.0, 1),
                "total_s": round(time.monotonic() - started, 1)}  # fmt: skip


def run(_stack: object, p: Params, report: Report) -> None:
    """`python -m bench.run` scenario "run": `llmq run` peak RSS, small vs large file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMQ_")}
    peaks = {}
    for n in p.run_lines:
        m = measure(n, 300, env)
        peaks[n] = m["peak_rss_mb"]
        report.add(Figure("run", f"llmq run peak RSS, {n:,} lines", m["peak_rss_mb"], "MB",
                          note=f"stored after {m['stored_s']} s"))  # fmt: skip
    small, large = p.run_lines
    ratio = peaks[large] / peaks[small]
    report.add(Figure("run", f"llmq run peak RSS {large:,} vs {small:,} lines",
                      ratio, "x", f"flat (≤ {RUN_FLAT:.2f}x)",
                      goal_at_most(ratio, RUN_FLAT)))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run_memory", description=__doc__)
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--settle", type=int, default=300, help="jobs finished before stop")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMQ_")}
    for n in args.lines:
        m = measure(n, args.settle, env)
        print(
            f"llmq run, {m['lines']:>7,} lines: peak RSS {m['peak_rss_mb']:7.1f} MB "
            f"(stored after {m['stored_s']} s, stopped after {m['total_s']} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
