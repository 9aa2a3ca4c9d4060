"""Four worker processes hammering one deployment through real Redis never beat its limit.

Synthetic time: all processes step through the same phases (a barrier keeps them together),
each with a clock a little off from the others, so their scripts reach Redis in any order.
Per phase, the total admitted across processes is exact: the full limit when the window has
emptied, nothing while it is full.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pytest
import redis

from workers.routing._health_model import RATE_WINDOW_S
from workers.routing.health import RedisHealthStore

T0 = 1_700_000_000.0
DEP = "anthropic/claude-x"
PROCESSES = 4
SKEW_S = 0.1  # process p's clock runs p * SKEW_S ahead
W = RATE_WINDOW_S
# Phase offsets (seconds after T0) and whether the window has room again by then.
PHASES = [(0.0, True), (20.0, False), (40.0, False), (W + 0.5, True), (W + 20, False), (2 * W + 1, True)]  # fmt: skip


def _hammer(
    redis_url: str,
    proc_no: int,
    limits: tuple[int | None, int | None, int],
    tries: int,
    barrier: Any,
    results: Any,
) -> None:
    """One worker process: at each phase, try `tries` times and report how many got in."""
    rpm, tpm, tokens = limits
    client = redis.Redis.from_url(redis_url)
    store = RedisHealthStore(client)
    counts = []
    for offset, _ in PHASES:
        barrier.wait(timeout=60)
        now = T0 + offset + proc_no * SKEW_S
        counts.append(sum(store.try_acquire(DEP, rpm, tpm, tokens, now) == 0.0 for _ in range(tries)))  # fmt: skip
    results.put((proc_no, counts))
    client.close()


@pytest.mark.parametrize(
    ("rpm", "tpm", "tokens", "per_window"),
    [
        (7, None, 10, 7),  # requests per minute
        (None, 1000, 150, 6),  # tokens per minute: 6 x 150 fits in 1000, 7 do not
        (5, 1000, 150, 5),  # both: the tighter one holds
    ],
)
def test_four_processes_never_exceed_the_limit(
    redis_url: str, rpm: int | None, tpm: int | None, tokens: int, per_window: int
) -> None:
    ctx = mp.get_context("fork")  # children inherit the imports: seconds, not tens
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    tries = 2 * per_window  # each process alone could fill the window twice over
    procs = [
        ctx.Process(
            target=_hammer, args=(redis_url, p, (rpm, tpm, tokens), tries, barrier, results)
        )
        for p in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    got = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    totals = [sum(got[p][i] for p in got) for i in range(len(PHASES))]
    assert totals == [per_window if room else 0 for _, room in PHASES]
