"""Periodic readings while a batch drains, and the steady-state window over them.

Owns: `Sampler` (every `every_s` seconds: jobs finished, CPU seconds and RSS of the watched
processes, optionally the simulator's served count) and `Window` (rates and per-job CPU between
two samples). Must not: start or stop anything.

Why a window: start-up (imports on the first job, pools filling) and the tail (fewer jobs than
threads) are not the steady state a production worker lives in; the window skips `warm_s` and
ends after `length_s` or when the batch is done, whichever comes first.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import create_engine, text

from bench.procstats import cpu_s, rss_mb

TERMINAL = "('succeeded', 'failed', 'cancelled')"


@dataclass
class Sample:
    t: float  # monotonic seconds
    done: int  # jobs of the batch in a terminal state
    cpu: dict[str, float]  # process name -> CPU seconds so far (tree)
    rss: dict[str, float]  # process name -> MB
    served: int | None = None  # simulator's total served requests


@dataclass
class Window:
    first: Sample
    last: Sample

    @property
    def seconds(self) -> float:
        return self.last.t - self.first.t

    @property
    def jobs(self) -> int:
        return self.last.done - self.first.done

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0

    def cpu_s(self, names: list[str] | None = None) -> float:
        keys = names if names is not None else list(self.last.cpu)
        return sum(self.last.cpu[k] - self.first.cpu.get(k, 0.0) for k in keys)

    def cpu_ms_per_job(self, names: list[str] | None = None) -> float | None:
        return 1000 * self.cpu_s(names) / self.jobs if self.jobs else None

    @property
    def served_rate(self) -> float | None:
        if self.first.served is None or self.last.served is None or self.seconds <= 0:
            return None
        return (self.last.served - self.first.served) / self.seconds


@dataclass
class Sampler:
    database_url: str
    batch_id: uuid.UUID
    total: int
    pids: Mapping[str, int]  # name -> pid of each watched process tree
    served: Callable[[], int] | None = None
    every_s: float = 0.5
    samples: list[Sample] = field(default_factory=list)

    def take(self, done_query: Callable[[], int]) -> Sample:
        sample = Sample(
            t=time.monotonic(),
            done=done_query(),
            cpu={name: cpu_s([pid]) for name, pid in self.pids.items()},
            rss={name: rss_mb(pid) for name, pid in self.pids.items()},
            served=self.served() if self.served else None,
        )
        self.samples.append(sample)
        return sample

    def run(self, warm_s: float, length_s: float, timeout_s: float) -> Window:
        """Sample until the window (warm_s .. warm_s + length_s) closes or the batch is done."""
        engine = create_engine(self.database_url)
        query = text(f"SELECT count(*) FROM jobs WHERE batch_id = :b AND state IN {TERMINAL}")

        def done() -> int:
            with engine.connect() as conn:
                return int(conn.execute(query, {"b": self.batch_id}).scalar_one())

        try:
            start = self.take(done)
            first: Sample | None = None
            while True:
                time.sleep(self.every_s)
                s = self.take(done)
                if first is None and s.t - start.t >= warm_s:
                    first = s
                finished = s.done >= self.total
                if first is not None and (finished or s.t - first.t >= length_s):
                    return Window(first, s)
                if finished:  # done before the warm-up ended: use everything
                    return Window(start, s)
                if s.t - start.t > timeout_s:
                    raise TimeoutError(f"batch not done in {timeout_s}s ({s.done}/{self.total})")
        finally:
            engine.dispose()

    def peak_rss(self, names: list[str]) -> dict[str, float]:
        return {n: max((s.rss.get(n, 0.0) for s in self.samples), default=0.0) for n in names}
