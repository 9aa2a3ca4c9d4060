"""The comparison loops of the CPU-bound scenario, each run as its own process.

`python -m bench.baselines litellm|httpx --url SIM --concurrency C --calls N --seconds S`
prints one JSON line: calls made, CPU seconds and wall seconds of this process over the
measured calls (warm-up calls, imports and start-up excluded), and how many connections to a
non-loopback host were refused.

Owns: LiteLLM's `Router.acompletion` loop and a bare httpx loop (a sync `httpx.Client` shared
by C threads: the transport an llmq worker uses, so the floor under llmq's own overhead), both
against the simulator's OpenAI route with the same request body. Must not: reach the internet:
a socket guard refuses any non-loopback connect (and counts it), LiteLLM's cost map is local and
its telemetry off, so nothing can hang on a missing network.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

MODEL = "m"
MAX_TOKENS = 64
WARMUP_CALLS = 100
_blocked: list[str] = []
_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if isinstance(address, tuple) and self.family in (socket.AF_INET, socket.AF_INET6):
        host = str(address[0])
        try:
            ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
        if not ok:
            _blocked.append(host)
            raise OSError(f"bench: non-loopback connect to {host!r} refused")
    return _real_connect(self, address)


def _messages(i: int) -> list[dict[str, str]]:
    prompt = (
        "Summarise the following item in one sentence, plainly and without preamble: "
        f"item base-{i}, a record of about one hundred and twenty characters."
    )
    return [{"role": "user", "content": prompt}]


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


# ---- LiteLLM ------------------------------------------------------------------------------


def run_litellm(url: str, concurrency: int, calls: int, seconds: float) -> dict[str, Any]:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm
    from litellm import Router

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    params = {"model": f"openai/{MODEL}", "api_base": f"{url}/openai/v1", "api_key": "sk-bench"}
    router = Router(model_list=[{"model_name": MODEL, "litellm_params": params}])

    async def call(i: int) -> None:
        await router.acompletion(model=MODEL, messages=_messages(i), max_tokens=MAX_TOKENS)

    return asyncio.run(_drive_async(call, concurrency, calls, seconds))


async def _drive_async(
    call: Callable[[int], Any], concurrency: int, calls: int, seconds: float
) -> dict[str, Any]:
    counter = iter(range(10**9))
    errors = 0

    async def worker(limit: int, deadline: float | None) -> int:
        nonlocal errors
        done = 0
        while True:
            i = next(counter)
            if i >= limit or (deadline is not None and time.monotonic() > deadline):
                return done
            try:
                await call(i)
                done += 1
            except Exception:  # noqa: BLE001 - counted; a failing baseline must show
                errors += 1

    await asyncio.gather(*(worker(WARMUP_CALLS, None) for _ in range(concurrency)))
    counter = iter(range(10**9))
    cpu0, t0 = _cpu(), time.monotonic()
    done = await asyncio.gather(*(worker(calls, t0 + seconds) for _ in range(concurrency)))
    return _result(sum(done), errors, _cpu() - cpu0, time.monotonic() - t0)


# ---- bare httpx ---------------------------------------------------------------------------


def run_httpx(url: str, concurrency: int, calls: int, seconds: float) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": "Bearer sk-bench"}
    client = httpx.Client(base_url=f"{url}/openai/v1", limits=limits, headers=headers, timeout=60)

    def call(i: int) -> None:
        body = {"model": MODEL, "messages": _messages(i), "max_tokens": MAX_TOKENS}
        response = client.post("/chat/completions", json=body)
        response.raise_for_status()
        response.json()

    try:
        _drive_threads(call, concurrency, WARMUP_CALLS, None)
        cpu0, t0 = _cpu(), time.monotonic()
        done, errors = _drive_threads(call, concurrency, calls, t0 + seconds)
        return _result(done, errors, _cpu() - cpu0, time.monotonic() - t0)
    finally:
        client.close()


def _drive_threads(
    call: Callable[[int], None], concurrency: int, limit: int, deadline: float | None
) -> tuple[int, int]:
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "errors": 0}

    def worker() -> None:
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= limit or (deadline is not None and time.monotonic() > deadline):
                return
            try:
                call(i)
                key = "done"
            except Exception:  # noqa: BLE001 - counted
                key = "errors"
            with lock:
                state[key] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return state["done"], state["errors"]


def _result(calls: int, errors: int, cpu_s: float, wall_s: float) -> dict[str, Any]:
    return {
        "calls": calls,
        "errors": errors,
        "cpu_s": cpu_s,
        "wall_s": wall_s,
        "blocked_connects": len(_blocked),
    }


RUNNERS = {"litellm": run_litellm, "httpx": run_httpx}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("which", choices=sorted(RUNNERS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    socket.socket.connect = _loopback_only  # type: ignore[method-assign]
    result = RUNNERS[args.which](args.url, args.concurrency, args.calls, args.seconds)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
