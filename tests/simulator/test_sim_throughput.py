"""Throughput smoke check: prints requests/s, asserts only correctness (no timing)."""

from __future__ import annotations

import asyncio

from simulator.loadtest import run_load
from simulator.server import RunningSimulator


def test_throughput_prints_rate(sim: RunningSimulator) -> None:
    # httpx is the bottleneck here (client CPU, and the server shares this process's GIL);
    # run `python -m simulator` + `python -m simulator.loadtest` for the server's own rate.
    total = 600
    result = asyncio.run(run_load(sim.url, total=total, concurrency=64, clients=8))
    print(
        f"\nsimulator throughput (8 httpx.AsyncClient, c=64, server in a thread of this "
        f"process): {result.rate:.0f} req/s over {total} requests"
    )
    assert result.ok == total
    stats = sim.stats()
    assert stats["total_served"] == total
    assert stats["providers"]["openai"]["models"]["gpt-load"]["served"] == total
