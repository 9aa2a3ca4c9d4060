"""Sizes of a bench run: full (`make bench`) and quick (`--quick`, for iteration).

Owns: every number that sets how long a scenario runs or how much it loads. Scenarios are
time-boxed (a window in seconds), so a slow llmq makes a run report lower figures, not longer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Params:
    mode: str
    workers: int = 2  # worker processes, as recommended for a 2-core host (celery-notes.md)
    # provider-bound: simulator latency and concurrency cap; threads per worker
    pb_latency_ms: float = 500.0
    pb_cap: int = 64
    pb_threads: int = 48
    pb_warm_s: float = 5.0
    pb_window_s: float = 30.0
    # CPU-bound: 0 ms simulator; threads per worker (the baselines use workers x threads)
    cpu_threads: int = 16
    cpu_warmup_jobs: int = 300
    cpu_jobs: int = 12_000
    cpu_warm_s: float = 3.0
    cpu_window_s: float = 20.0
    baseline_calls: int = 4_000
    baseline_s: float = 20.0
    # submit, memory, ledger
    submit_lines: int = 100_000
    memory_queued: tuple[int, int] = (1_000, 10_000)
    run_lines: tuple[int, int] = (2_000, 60_000)  # `llmq run` peak RSS: small vs large file
    memory_sample_s: float = 12.0
    ledger_rows: int = 10_000
    ledger_fill_s: float = 240.0  # at ~30 jobs/s the top-up is most of a full run
    # serve: clients polling GET /v1/batches/{id} while the batch runs
    serve_lines: int = 10_000
    serve_clients: int = 50
    serve_poll_s: float = 0.5  # seconds between one client's polls
    serve_threads: int = 16
    serve_latency_ms: float = 20.0
    serve_window_s: float = 240.0  # stop polling then, finished or not
    # fairness: 10-job batches submitted while a big batch runs
    fair_big_jobs: int = 100_000
    fair_small_batches: int = 20
    fair_every_s: float = 1.0
    fair_threads: int = 16
    fair_latency_ms: float = 50.0
    lanes_jobs: int = 2_000  # issue 18: jobs per lane (batch, then sync)
    # embeddings (issue 17): short texts in /v1/embeddings lines through one provider
    emb_texts: int = 100_000
    emb_per_line: int = 1_000
    emb_dims: int = 256  # throughput; storage is measured at 1,536 dimensions
    emb_store_texts: int = 2_000
    emb_threads: int = 4
    emb_timeout_s: float = 600.0

    @property
    def pb_ideal_rate(self) -> float:
        """Jobs/s the cap allows: cap concurrent calls of `latency` seconds each."""
        return self.pb_cap / (self.pb_latency_ms / 1000)


FULL = Params(mode="full")
QUICK = Params(
    mode="quick",
    fair_big_jobs=20_000,
    fair_small_batches=8,
    pb_warm_s=3.0,
    pb_window_s=10.0,
    cpu_warmup_jobs=100,
    cpu_jobs=3_000,
    cpu_warm_s=2.0,
    cpu_window_s=8.0,
    baseline_calls=1_000,
    baseline_s=8.0,
    submit_lines=20_000,
    memory_sample_s=6.0,
    ledger_rows=2_000,
    ledger_fill_s=40.0,
    serve_lines=2_000,
    serve_window_s=60.0,
    lanes_jobs=500,
    run_lines=(2_000, 20_000),
    emb_texts=20_000,
)
