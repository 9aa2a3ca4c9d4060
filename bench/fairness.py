"""Small batches beside a big one: submit→result time of 10-job batches while a 100k-job batch
runs, and Postgres transactions per job (issue 21).

The big batch is submitted first (`llmq submit`, as users do), then, once workers are busy on
it, a 10-job batch is submitted every `fair_every_s` through the Python API (`Client.submit`),
the way an interactive caller would. A small batch's time is from the start of its submit to
the `finished_at` of its last job, read from the ledger. Transactions per job: the database's
`xact_commit + xact_rollback` (pg_stat_database) over the sampling window, divided by the jobs
finished in it; it counts every transaction on the database (workers, beat's sweeps, this
scenario's own polling), so it is an upper bound for the workers' own.
"""

from __future__ import annotations

import statistics
import time
import uuid

from bench.params import Params
from bench.report import Figure, Report, goal_at_most
from bench.stack import REDIS_URL, Stack, write_jsonl

NAME = "fairness"


def run(stack: Stack, p: Params, report: Report) -> None:
    from core.config_file import load_config
    from producer.client import Client

    stack.configure_sim(latency_ms=p.fair_latency_ms)
    big_path = write_jsonl(stack.workdir / "fair-big.jsonl", p.fair_big_jobs, "big")
    small_path = write_jsonl(stack.workdir / "fair-small.jsonl", 10, "small")
    procs = [*stack.start_workers(p.workers, p.fair_threads), stack.start_beat()]
    batches: list[uuid.UUID] = []
    try:
        big_id, _, _ = stack.submit(big_path)
        batches.append(big_id)
        _wait_done(stack, big_id, 200, timeout_s=120)  # workers busy on the big batch
        xacts0, done0, t0 = _xacts(stack), _done(stack), time.monotonic()
        small: list[tuple[uuid.UUID, float]] = []
        with Client(stack.database_url, REDIS_URL, load_config(str(stack.config_path))) as client:
            for _ in range(p.fair_small_batches):
                started = time.time()
                small.append((client.submit(small_path), started))
                time.sleep(p.fair_every_s)
        for batch_id, _ in small:
            batches.append(batch_id)
            _wait_done(stack, batch_id, 10, timeout_s=600)
        xacts, done, seconds = _xacts(stack) - xacts0, _done(stack) - done0, time.monotonic() - t0
        big_left = p.fair_big_jobs - _done_of(stack, big_id)
    finally:
        stack.abandon(procs, *batches)
    waits = sorted(_finished_at(stack, b) - started for b, started in small)
    _figures(report, p, waits, xacts, done, seconds, big_left)


def _figures(  # noqa: PLR0913 - the measured values, reported together
    report: Report,
    p: Params,
    waits: list[float],
    xacts: int,
    done: int,
    seconds: float,
    big_left: int,
) -> None:
    p50 = statistics.median(waits)
    p99 = waits[min(len(waits) - 1, round(0.99 * (len(waits) - 1)))]
    note = (
        f"{len(waits)} batches of 10, one every {p.fair_every_s:.0f} s, while a "
        f"{p.fair_big_jobs:,}-job batch ran ({big_left:,} of it still unfinished after the last "
        f"small one); {p.workers} workers x {p.fair_threads} threads, simulator "
        f"{p.fair_latency_ms:.0f} ms"
    )
    per_job = xacts / done if done else None
    report.add(
        Figure(NAME, "10-job batch submit→result p50", p50, "s", note=note),
        Figure(NAME, "10-job batch submit→result p99", p99, "s", "< 2 s", goal_at_most(p99, 2.0)),
        Figure(
            NAME,
            "Postgres transactions per job",
            per_job,
            "",
            note=f"{xacts:,} transactions (all sessions) / {done:,} jobs in {seconds:.0f} s",
        ),
    )
    report.details[NAME] = {"waits_s": waits, "xacts": xacts, "jobs": done, "seconds": seconds}


def _xacts(stack: Stack) -> int:
    time.sleep(1.1)  # backends flush their counters about once a second while busy
    row = stack.sql(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :d",
        d=stack.db_name,
    )
    return int(row[0][0])


def _done(stack: Stack) -> int:
    return int(stack.sql("SELECT count(*) FROM jobs WHERE finished_at IS NOT NULL")[0][0])


def _done_of(stack: Stack, batch_id: uuid.UUID) -> int:
    query = "SELECT count(*) FROM jobs WHERE batch_id = :b AND finished_at IS NOT NULL"
    return int(stack.sql(query, b=batch_id)[0][0])


def _wait_done(stack: Stack, batch_id: uuid.UUID, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _done_of(stack, batch_id) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch_id}: fewer than {count} jobs done in {timeout_s}s")
        time.sleep(0.1)


def _finished_at(stack: Stack, batch_id: uuid.UUID) -> float:
    query = "SELECT extract(epoch FROM max(finished_at)) FROM jobs WHERE batch_id = :b"
    return float(stack.sql(query, b=batch_id)[0][0])
