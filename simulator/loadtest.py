"""A small load generator for measuring the simulator's throughput.

Owns ``run_load`` (fire N OpenAI-format requests at a given concurrency with one
``httpx.AsyncClient`` and return requests/s) and a CLI: ``python -m simulator.loadtest --url
http://127.0.0.1:8900 -n 5000 -c 64``. Used by the throughput test and for quick benchmarks;
it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import httpx


@dataclass(slots=True)
class LoadResult:
    """Outcome of one load run."""

    requests: int
    ok: int
    seconds: float

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


async def run_load(
    url: str,
    total: int = 5000,
    concurrency: int = 64,
    clients: int = 1,
    provider_path: str = "/openai/v1",
) -> LoadResult:
    """Send ``total`` chat requests to ``url`` with ``concurrency`` workers.

    The workers share ``clients`` ``httpx.AsyncClient`` instances. httpx/httpcore's connection
    pool does per-request work proportional to its size, so one client with 64 connections is
    far slower (client CPU-bound) than 8 clients with 8 connections each.
    """
    clients = max(1, min(clients, concurrency))
    per_client = -(-concurrency // clients)
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    headers = {"Authorization": "Bearer sk-load"}
    remaining = iter(range(total))
    ok = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal ok
        for i in remaining:
            body = {
                "model": "gpt-load",
                "messages": [{"role": "user", "content": f"request {i}"}],
                "max_tokens": 32,
            }
            response = await client.post(provider_path + "/chat/completions", json=body)
            if response.status_code == 200:
                ok += 1

    pool = [httpx.AsyncClient(base_url=url, headers=headers, limits=limits) for _ in range(clients)]
    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker(pool[i % clients]) for i in range(concurrency)))
        seconds = time.perf_counter() - start
    finally:
        for client in pool:
            await client.aclose()
    return LoadResult(requests=total, ok=ok, seconds=seconds)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: print requests/s."""
    parser = argparse.ArgumentParser(prog="python -m simulator.loadtest")
    parser.add_argument("--url", default="http://127.0.0.1:8900")
    parser.add_argument("-n", "--requests", type=int, default=5000)
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("--clients", type=int, default=1, help="httpx clients to spread over")
    args = parser.parse_args(argv)
    result = asyncio.run(run_load(args.url, args.requests, args.concurrency, args.clients))
    print(
        f"{result.requests} requests ({result.ok} ok) in {result.seconds:.2f}s: "
        f"{result.rate:.0f} req/s"
    )


if __name__ == "__main__":
    main()
