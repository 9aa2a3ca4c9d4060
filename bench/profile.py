"""`python -m bench.profile [--jobs N] [--seconds S]`: where a worker's CPU goes, per job.

Runs the CPU-bound setup (simulator at 0 ms, `llmq worker` processes, a warm-up batch), then
records the workers with py-spy (`--gil`: only the thread holding the GIL is sampled, so the
profile is Python CPU, not waiting) while a batch drains, and prints two breakdowns scaled to
CPU ms per job: by library (the first frame from the leaf that belongs to a known package),
and by pipeline stage (inclusive). Needs py-spy (`pip install py-spy`; root or ptrace rights).

Owns: the profile run and its aggregation. Must not: be part of `make bench` (py-spy is a
developer tool, not a bench dependency).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procstats import cpu_s
from bench.stack import Stack, write_jsonl

# (category, path prefixes as py-spy prints them); the first frame from the leaf that matches
# names the category, so stdlib frames (threading, socket, ssl) count for their caller.
LIBRARIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging", ("logging/", "workers/observability/")),
    ("celery+kombu", ("celery/", "kombu/", "vine/", "billiard/", "amqp/", "click/")),
    ("sqlalchemy", ("sqlalchemy/",)),
    ("psycopg", ("psycopg/", "psycopg_binary/", "psycopg_pool/")),
    ("httpx+httpcore", ("httpx/", "httpcore/", "h11/", "anyio/")),
    ("redis-py", ("redis/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("json", ("json/",)),
    ("llmq: ledger repos", ("core/ledger/",)),
    ("llmq: providers", ("workers/providers/",)),
    ("llmq: routing+health", ("workers/routing/",)),
    # admission.py holds what pipeline.py did before issue 14: same bucket, comparable runs
    (
        "llmq: pipeline+tasks",
        ("workers/pipeline.py", "workers/admission.py", "workers/tasks.py", "workers/runtime.py"),
    ),
    ("llmq: other", ("workers/", "schemas/")),
)
# Inclusive stages: (label, regex over one frame, "func (path:line)").
TASK = r"^process_(job|chunk) \(workers/"
STAGES: tuple[tuple[str, str], ...] = (
    ("task total (process_job / process_chunk)", TASK),
    ("  claim", r"^claim_jobs? \("),
    ("  plan: health snapshot + rank", r"snapshot \(workers/routing|^rank_candidates \("),
    ("  admit: rate limit (Redis)", r"try_acquire \(workers/routing"),
    ("  admit: quota reserve + attempt insert", r"^_reserve_and_start \(|^_start_and_reserve \("),
    (
        "  provider call (adapter.complete / call loop wait)",
        r"complete \(workers/providers|^next_done \(",
    ),
    ("  finish: health record_success", r"record_success \(workers/routing"),
    ("  finish: transaction", r"^finish_tx \("),
    ("    of which quota settle", r"^settle \(core/ledger/quota_repo"),
    ("  begin/commit/close (session_scope)", r"^session_scope \("),
)
CALL_LOOP = r"^CallLoop\._one \(workers/chunk/calls"  # a chunk's calls, on the process's loop
CALL_LOOP_LABEL = "provider calls on the call loop (aiohttp + adapters)"
OUTSIDE = "celery outside the task (consume, ack, events, logs, heartbeat)"
TASK_LOGGING = "  logging inside the task"


def _path(frame: str) -> str:
    return frame.rpartition(" (")[2]


def category(frames: list[str]) -> str:
    for frame in reversed(frames):
        path = _path(frame)
        for name, prefixes in LIBRARIES:
            if path.startswith(prefixes):
                return name
    return "other (stdlib, C)"


def aggregate(raw: Path) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    total = 0
    libs: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    patterns = [(label, re.compile(p)) for label, p in STAGES]
    task = re.compile(TASK)
    call_loop = re.compile(CALL_LOOP)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        libs[category(frames)] += n
        for label, pattern in patterns:
            if any(pattern.search(f) for f in frames):
                stages[label] += n
        in_task = any(task.search(f) for f in frames)
        if any(call_loop.search(f) for f in frames):
            stages[CALL_LOOP_LABEL] += n
        elif not in_task:
            stages[OUTSIDE] += n
        elif any(_path(f).startswith(("logging/", "workers/observability/")) for f in frames):
            stages[TASK_LOGGING] += n
    return total, libs, stages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=6000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples/s")
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the workers (repeatable)"
    )
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    workdir = Path(tempfile.mkdtemp(prefix="llmq-profile-"))
    with Stack(workdir) as stack:
        stack.open()
        workers = stack.start_workers(args.workers, args.threads, **env)
        warm = write_jsonl(workdir / "warm.jsonl", 300, "pw")
        warm_id, _, _ = stack.submit(warm)
        stack.wait_finished(warm_id, 300, 120)
        batch_id, _, _ = stack.submit(write_jsonl(workdir / "p.jsonl", args.jobs, "prof"))
        time.sleep(1.0)
        done0 = _done(stack, batch_id)
        cpu0 = cpu_s([w.pid for w in workers])
        spies = [
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "-p",
                    str(w.pid),
                    "-o",
                    str(workdir / f"w{i}.txt"),
                    "-f",
                    "raw",
                    "-d",
                    str(int(args.seconds)),
                    "-r",
                    str(args.rate),
                    "--gil",
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for i, w in enumerate(workers)
        ]
        for s in spies:
            s.wait()
        jobs = _done(stack, batch_id) - done0
        cpu_ms = 1000 * (cpu_s([w.pid for w in workers]) - cpu0) / max(jobs, 1)
    _print(workdir, jobs, cpu_ms, args)


def _done(stack: Stack, batch_id: object) -> int:
    query = "SELECT count(*) FROM jobs WHERE batch_id = :b AND state = 'succeeded'"
    return int(stack.sql(query, b=batch_id)[0][0])


def _print(workdir: Path, jobs: int, cpu_ms: float, args: argparse.Namespace) -> None:
    total = 0
    libs: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    for raw in sorted(workdir.glob("w*.txt")):
        t, lib, stage = aggregate(raw)
        total += t
        libs.update(lib)
        stages.update(stage)
    print(f"{jobs} jobs profiled; worker CPU {cpu_ms:.2f} ms/job (process total, incl. C and")
    print("kernel time); Python samples holding the GIL scaled to that total:\n")
    print("by library (self time, first known package from the leaf):")
    for name, n in libs.most_common():
        print(f"  {100 * n / total:5.1f}%  {cpu_ms * n / total:6.2f} ms  {name}")
    print("\nby pipeline stage (inclusive):")
    for label in [*(label for label, _ in STAGES), TASK_LOGGING, CALL_LOOP_LABEL, OUTSIDE]:
        n = stages.get(label, 0)
        print(f"  {100 * n / total:5.1f}%  {cpu_ms * n / total:6.2f} ms  {label}")
    print(f"\nraw py-spy output in {workdir}")


if __name__ == "__main__":
    main()
