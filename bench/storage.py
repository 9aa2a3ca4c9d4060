"""Submit time, ledger size and worker memory.

- submit: wall seconds of `llmq submit FILE` (a new process: start-up, parse and validate every
  line, one transaction for the batch and its jobs, enqueue every id), no workers running.
- ledger: bytes per attempt row = pg_total_relation_size('attempts') (heap, indexes, TOAST)
  / rows, after at least `ledger_rows` attempts made by the real pipeline (topped up here
  when the earlier scenarios made fewer). Attempt rows hold no prompt or response text.
- memory: peak RSS per worker process while it drains a queue that held 1k, then 10k jobs
  when it started (sampled from the moment it is ready); flat means the 10k peak is within
  10% of the 1k one.
"""

from __future__ import annotations

from bench.params import Params
from bench.report import Figure, Report, goal_at_most
from bench.sampling import Sampler
from bench.stack import Stack, write_jsonl

FLAT_TOLERANCE = 1.10  # "flat": the 10k-queued peak within 10% of the 1k-queued one


def run_submit(stack: Stack, p: Params, report: Report) -> None:
    path = write_jsonl(stack.workdir / "submit.jsonl", p.submit_lines, "sub")
    _, wall, phases = stack.submit(path)
    queued = stack.queue_length()
    stack.flush_redis()
    stack.truncate()
    # Start-up does not grow with the file; the phases do (quick mode extrapolates them).
    work = sum(phases.values()) or wall
    per_100k = (wall - work) + work * 100_000 / p.submit_lines
    shown = ", ".join(f"{k.removesuffix('_s')} {v:.2f}s" for k, v in phases.items())
    report.add(
        Figure(
            "submit",
            f"llmq submit, {p.submit_lines:,} lines",
            wall,
            "s",
            "≤ 10 s per 100k" if p.submit_lines != 100_000 else "≤ 10 s",
            goal_at_most(per_100k, 10.0),
            note=f"{shown}; the rest is process start-up; {queued:,} messages queued",
        )
    )
    report.details["submit"] = {
        "lines": p.submit_lines,
        "wall_s": wall,
        "phases": phases,
        "per_100k_s": per_100k,
        "messages": queued,
    }


def run_memory(stack: Stack, p: Params, report: Report) -> None:
    stack.configure_sim(latency_ms=0)
    peaks: dict[int, dict[str, float]] = {}
    for queued in p.memory_queued:
        path = write_jsonl(stack.workdir / f"memory-{queued}.jsonl", queued, f"mem{queued}")
        batch_id, _, _ = stack.submit(path)
        workers = stack.start_workers(p.workers, p.cpu_threads)
        try:
            pids = {f"worker{i}": w.pid for i, w in enumerate(workers)}
            sampler = Sampler(stack.database_url, batch_id, 10**9, pids, every_s=0.25)
            try:
                sampler.run(0.0, p.memory_sample_s, timeout_s=p.memory_sample_s + 30)
            except TimeoutError:
                pass
            at_start = sampler.samples[0].rss
            peak = sampler.peak_rss(list(pids))
            done = sampler.samples[-1].done
        finally:
            stack.abandon(workers, batch_id)
        peaks[queued] = {
            "at_start_mb": max(at_start.values()),
            "peak_mb": max(peak.values()),
            "drained": done,
        }
    small, large = p.memory_queued
    ratio = peaks[large]["peak_mb"] / peaks[small]["peak_mb"]
    for queued in p.memory_queued:
        m = peaks[queued]
        report.add(
            Figure(
                "memory",
                f"peak RSS per worker, {queued:,} queued",
                m["peak_mb"],
                "MB",
                note=f"{m['at_start_mb']:.0f} MB with the queue full at start; "
                f"{m['drained']:,} jobs drained in {p.memory_sample_s:.0f} s",
            )
        )
    report.add(
        Figure(
            "memory",
            f"peak RSS {large // 1000}k vs {small // 1000}k queued",
            ratio,
            "x",
            f"flat (≤ {FLAT_TOLERANCE:.2f}x)",
            goal_at_most(ratio, FLAT_TOLERANCE),
        )
    )
    report.details["memory"] = {str(k): v for k, v in peaks.items()}


def run_ledger(stack: Stack, p: Params, report: Report) -> None:
    have = _attempts(stack)
    if have < p.ledger_rows:
        _top_up(stack, p, p.ledger_rows - have)
    sizes = stack.sql(
        "SELECT count(*), pg_total_relation_size('attempts'), pg_relation_size('attempts'), "
        "pg_indexes_size('attempts'), coalesce(avg(pg_column_size(a.*)), 0) FROM attempts a"
    )[0]
    rows, total, heap, indexes, tuple_bytes = (float(x) for x in sizes)
    per_row = total / rows if rows else None
    # The same rows rewritten without dead versions (each attempt is inserted, then updated):
    # what the table would weigh if every row were written once.
    stack.sql("VACUUM FULL attempts")
    compact = float(stack.sql("SELECT pg_total_relation_size('attempts')")[0][0])
    short = rows < p.ledger_rows
    report.add(
        Figure(
            "ledger",
            "bytes per attempt row",
            per_row,
            "B",
            "≤ 300 B",
            goal_at_most(per_row, 300.0),
            note=f"{rows:,.0f} rows: heap {heap / rows:.0f} + indexes {indexes / rows:.0f} B/row, "
            f"tuple data {tuple_bytes:.0f} B; {compact / rows:.0f} B/row after VACUUM FULL"
            + (f"; FEWER than the {p.ledger_rows:,} asked (time box)" if short else ""),
        )
    )
    report.details["ledger"] = {
        "rows": rows,
        "total_bytes": total,
        "heap_bytes": heap,
        "index_bytes": indexes,
        "avg_tuple_bytes": tuple_bytes,
        "bytes_per_row_after_vacuum_full": compact / rows if rows else None,
    }


def _attempts(stack: Stack) -> int:
    return int(stack.sql("SELECT count(*) FROM attempts")[0][0])


def _top_up(stack: Stack, p: Params, missing: int) -> None:
    """Run jobs through the real pipeline until the ledger holds enough attempts (time-boxed)."""
    stack.configure_sim(latency_ms=0)
    path = write_jsonl(stack.workdir / "ledger.jsonl", missing, "led")
    workers = stack.start_workers(p.workers, p.cpu_threads)
    batch_id = None
    try:
        batch_id, _, _ = stack.submit(path)
        sampler = Sampler(stack.database_url, batch_id, missing, {}, every_s=1.0)
        try:
            sampler.run(0.0, p.ledger_fill_s, timeout_s=p.ledger_fill_s + 30)
        except TimeoutError:
            pass
    finally:
        stack.abandon(workers, *([batch_id] if batch_id else []))
