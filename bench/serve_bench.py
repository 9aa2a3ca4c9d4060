"""`llmq serve` under polling load: 50 clients poll a batch while its 10,000 lines run.

`llmq serve --workers <workers>` runs as its own processes (as in production), real workers
drain the batch, and `serve_clients` threads, each with its own keep-alive HTTP connection and
API key check, GET /v1/batches/{id} every `serve_poll_s` seconds until the batch is completed
(or the window ends). The figures are the poll latency p50/p95/max as the clients see it, and errors (any
non-200 or transport error). Goal: p95 under 50 ms and no error.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from pathlib import Path

import httpx

from bench.params import Params
from bench.report import Figure, Report, goal_at_most
from bench.stack import MODEL, Stack, free_port, wait_for_log

NAME = "serve"


def write_openai_jsonl(path: Path, n: int) -> Path:
    """n OpenAI Batch input lines with distinct prompts (no cache hits)."""
    with open(path, "w") as f:
        for i in range(n):
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Summarise record {i} in a sentence."}],
                "max_tokens": 32,
            }
            line = {"custom_id": f"s-{i}", "method": "POST", "url": "/v1/chat/completions"}
            f.write(json.dumps({**line, "body": body}) + "\n")
    return path


class Poller(threading.Thread):
    """One client: poll until `stop` is set; keeps every latency (seconds) and error."""

    def __init__(self, base: str, key: str, batch_id: str, every_s: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.url = f"{base}/v1/batches/{batch_id}"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.every_s, self.stop = every_s, stop
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.last_status = ""

    def run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=30) as http:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    r = http.get(self.url)
                    took = time.perf_counter() - t0
                    if r.status_code != 200:
                        self.errors.append(f"HTTP {r.status_code}")
                    else:
                        self.latencies.append(took)
                        self.last_status = r.json()["status"]
                except httpx.HTTPError as exc:
                    took = time.perf_counter() - t0
                    self.errors.append(type(exc).__name__)
                self.stop.wait(max(0.0, self.every_s - took))


def _start_serve(stack: Stack, processes: int = 1, verbose: bool = False) -> tuple[str, str]:
    """(base URL, an API key): `llmq keys create`, then `llmq serve` until /health answers
    (`verbose`: llmq's own INFO lines reach the process log, e.g. the dashboard's warm-up)."""
    import subprocess

    made = subprocess.run(
        stack.llmq_argv("keys", "create", "--tenant", "bench", "--json"),
        env=stack.env(), cwd=stack.workdir, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if made.returncode != 0:
        raise RuntimeError(f"llmq keys create failed:\n{made.stderr}")
    key = json.loads(made.stdout)["key"]
    port = free_port()
    proc = stack.spawn(
        "serve",
        stack.llmq_argv(
            *(["-v"] if verbose else []), "serve", "--port", str(port), "--workers", str(processes), "--log-level", "warning"
        ),
        stack.env(),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return base, key
        except httpx.TransportError:
            pass
        if not proc.alive():
            break
        time.sleep(0.1)
    wait_for_log(proc, "never", 0.1)  # raises with the log
    raise RuntimeError("llmq serve did not start")


def run(stack: Stack, p: Params, report: Report) -> None:
    from openai import OpenAI

    stack.configure_sim(latency_ms=p.serve_latency_ms)
    base, key = _start_serve(stack, p.workers)
    procs = stack.start_workers(p.workers, p.serve_threads)
    client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    path = write_openai_jsonl(stack.workdir / "serve.jsonl", p.serve_lines)
    t0 = time.monotonic()
    uploaded = client.files.create(file=path.open("rb"), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    create_s = time.monotonic() - t0
    stop = threading.Event()
    pollers = [Poller(base, key, batch.id, p.serve_poll_s, stop) for _ in range(p.serve_clients)]
    try:
        for poller in pollers:
            poller.start()
        deadline = time.monotonic() + p.serve_window_s
        while time.monotonic() < deadline and pollers[0].last_status != "completed":
            time.sleep(0.5)
        stop.set()
        for poller in pollers:
            poller.join(30)
        final = client.batches.retrieve(batch.id)
    finally:
        stop.set()
        ledger = stack.sql("SELECT batch_id FROM api_batches WHERE id = :i", i=batch.id)
        stack.abandon(procs, *[row[0] for row in ledger if row[0] is not None])
    _report(report, p, pollers, final, create_s)
    report.details[NAME]["load_average_1m_at_end"] = os.getloadavg()[0]


def _report(
    report: Report, p: Params, pollers: list[Poller], final: object, create_s: float
) -> None:
    latencies = sorted(x * 1000 for poller in pollers for x in poller.latencies)
    errors = [e for poller in pollers for e in poller.errors]
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else None
    counts = final.request_counts  # type: ignore[attr-defined]
    note = (
        f"{p.serve_clients} clients polling every {p.serve_poll_s} s while a "
        f"{p.serve_lines}-line batch ran ({counts.completed}/{counts.total} done, status "
        f"{final.status}); {len(latencies)} polls; upload + create took {create_s:.1f} s; "  # type: ignore[attr-defined]
        f"`llmq serve --workers {p.workers}`; load average {os.getloadavg()[0]:.1f} at the end"
    )
    report.add(
        Figure(NAME, "poll latency p95", p95, "ms", "< 50 ms", goal_at_most(p95, 50.0), note),
        Figure(NAME, "poll latency p50", statistics.median(latencies) if latencies else None, "ms"),
        Figure(NAME, "poll latency max", latencies[-1] if latencies else None, "ms"),
        Figure(NAME, "poll errors", float(len(errors)), "", "0", len(errors) == 0),
    )
    report.details[NAME] = {
        "polls": len(latencies),
        "errors": sorted(set(errors)),
        "status": final.status,  # type: ignore[attr-defined]
        "completed": counts.completed,
        "total": counts.total,
        "upload_and_create_s": create_s,
    }
