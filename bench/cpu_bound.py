"""CPU-bound: what one job costs llmq in CPU, beside LiteLLM's Router and a bare httpx loop.

The simulator (its own process, not counted) answers at once, so every process is limited by
its own CPU. llmq: `llmq submit` (producer), N `llmq worker` processes and `llmq beat`; CPU per
job = the producer's CPU for the submit / jobs, plus the workers' and beat's CPU over the
steady-state window / jobs finished in it (process trees, user + system). The baselines run
afterwards, alone, at the same concurrency (workers x threads) against the same endpoint.
Postgres (our database's backends), Redis and the simulator are shown, not counted.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.params import Params
from bench.procstats import children_cpu_s, redis_server_pid
from bench.report import Figure, Report, goal_at_most
from bench.sampling import Sampler, Window
from bench.stack import REDIS_URL, Stack, base_env, write_jsonl

NAME = "cpu-bound"
LLMQ = ["producer", "workers", "beat"]


def run(stack: Stack, p: Params, report: Report) -> None:
    stack.configure_sim(latency_ms=0)
    concurrency = p.workers * p.cpu_threads
    llmq = _llmq(stack, p)
    litellm = _baseline(stack, "litellm", concurrency, p)
    bare = _baseline(stack, "httpx", concurrency, p)
    _figures(report, p, llmq, litellm, bare)


def _llmq(stack: Stack, p: Params) -> dict[str, float | None]:
    warm = write_jsonl(stack.workdir / "cpu-warm.jsonl", p.cpu_warmup_jobs, "cw")
    path = write_jsonl(stack.workdir / "cpu.jsonl", p.cpu_jobs, "cpu")
    workers = stack.start_workers(p.workers, p.cpu_threads)
    beat = stack.start_beat()
    procs = [*workers, beat]
    batches = []
    try:
        # Warm-up: first-job imports, pools and prepared statements, as in a running service.
        warm_id, _, _ = stack.submit(warm)
        batches.append(warm_id)
        stack.wait_finished(warm_id, p.cpu_warmup_jobs, timeout_s=120)
        pids = {f"worker{i}": w.pid for i, w in enumerate(workers)} | {"beat": beat.pid}
        if stack.sim is not None:
            pids["simulator"] = stack.sim.pid
        redis_pid = redis_server_pid(REDIS_URL)
        if redis_pid:
            pids["redis"] = redis_pid
        pids |= {f"pg{pid}": pid for pid in stack.postgres_backends()}
        before = children_cpu_s()
        batch_id, wall, _ = stack.submit(path)
        producer_s = children_cpu_s() - before
        batches.append(batch_id)
        sampler = Sampler(stack.database_url, batch_id, p.cpu_jobs, pids)
        window = sampler.run(p.cpu_warm_s, p.cpu_window_s, timeout_s=p.cpu_window_s * 6 + 60)
    finally:
        stack.abandon(procs, *batches)
    return _llmq_figures(window, producer_s, p.cpu_jobs, wall)


def _llmq_figures(
    window: Window, producer_s: float, submitted: int, submit_wall: float
) -> dict[str, float | None]:
    names = list(window.last.cpu)
    workers = [n for n in names if n.startswith("worker")]
    per_job = window.cpu_ms_per_job
    postgres = per_job([n for n in names if n.startswith("pg")])
    producer = 1000 * producer_s / submitted
    worker_ms = per_job(workers)
    beat_ms = per_job(["beat"])
    total = None if worker_ms is None or beat_ms is None else producer + worker_ms + beat_ms
    return {
        "jobs_per_s": window.rate,
        "window_s": window.seconds,
        "window_jobs": window.jobs,
        "cpu_ms_per_job": total,
        "producer_ms": producer,
        "workers_ms": worker_ms,
        "beat_ms": beat_ms,
        "postgres_ms": postgres,
        "redis_ms": per_job(["redis"]) if "redis" in names else None,
        "simulator_ms": per_job(["simulator"]) if "simulator" in names else None,
        "submit_wall_s": submit_wall,
    }


def _baseline(stack: Stack, which: str, concurrency: int, p: Params) -> dict[str, float]:
    argv = [
        sys.executable,
        "-m",
        "bench.baselines",
        which,
        "--url",
        stack.sim_url,
        "--concurrency",
        str(concurrency),
        "--calls",
        str(p.baseline_calls),
        "--seconds",
        str(p.baseline_s),
    ]
    done = subprocess.run(
        argv, env=base_env(), capture_output=True, text=True, timeout=p.baseline_s * 6 + 120
    )
    if done.returncode != 0:
        raise RuntimeError(f"{which} baseline failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    calls = result["calls"] or 1
    result["cpu_ms_per_call"] = 1000 * result["cpu_s"] / calls
    result["calls_per_s"] = result["calls"] / result["wall_s"] if result["wall_s"] else 0.0
    return result


def _figures(
    report: Report,
    p: Params,
    llmq: dict[str, float | None],
    litellm: dict[str, float],
    bare: dict[str, float],
) -> None:
    ours, theirs = llmq["cpu_ms_per_job"], litellm["cpu_ms_per_call"]
    ratio = None if ours is None or not theirs else ours / theirs
    c = p.workers * p.cpu_threads
    split = (
        f"producer {llmq['producer_ms']:.2f} + workers {llmq['workers_ms'] or 0:.2f} + "
        f"beat {llmq['beat_ms'] or 0:.2f} ms/job; {p.workers} workers x {p.cpu_threads} "
        f"threads; window {llmq['window_s']:.0f} s, {llmq['window_jobs']} jobs"
    )
    blocked = int(litellm.get("blocked_connects", 0))
    report.add(
        Figure(NAME, "llmq jobs/s", llmq["jobs_per_s"], "jobs/s"),
        Figure(NAME, "llmq CPU per job (all llmq processes)", ours, "ms", note=split),
        Figure(NAME, "LiteLLM Router CPU per call", theirs, "ms",
               note=f"Router.acompletion, {c} concurrent, {litellm['calls']} calls, "
               f"{litellm['calls_per_s']:.0f} calls/s, {litellm['errors']} errors, "
               f"{blocked} non-loopback connects refused"),  # fmt: skip
        Figure(NAME, "bare httpx CPU per call", bare["cpu_ms_per_call"], "ms",
               note=f"sync httpx.Client in {c} threads, {bare['calls_per_s']:.0f} calls/s"),
        Figure(NAME, "llmq / LiteLLM CPU", ratio, "x", "≤ 0.25x", goal_at_most(ratio, 0.25)),
        Figure(NAME, "not counted: Postgres backends", llmq["postgres_ms"], "ms/job"),
        Figure(NAME, "not counted: Redis server (shared)", llmq["redis_ms"], "ms/job"),
    )  # fmt: skip
    report.details[NAME] = {"llmq": llmq, "litellm": litellm, "httpx": bare, "concurrency": c}
