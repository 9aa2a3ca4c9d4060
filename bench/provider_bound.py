"""Provider-bound: does llmq keep a rate-capped provider busy?

The simulator answers after `pb_latency_ms` and serves at most `pb_cap` requests at once
(extra ones wait in its queue), so no client can complete more than cap / latency jobs/s.
N worker processes with enough threads to always have calls waiting drain a batch; the figure
is the completed-jobs rate in the steady-state window as a fraction of that ideal.
"""

from __future__ import annotations

from bench.params import Params
from bench.report import Figure, Report, goal_at_least
from bench.sampling import Sampler
from bench.stack import Stack, write_jsonl

NAME = "provider-bound"


def run(stack: Stack, p: Params, report: Report) -> None:
    stack.configure_sim(
        latency_ms=p.pb_latency_ms, max_concurrency=p.pb_cap, concurrency_mode="queue"
    )
    ideal = p.pb_ideal_rate
    jobs = int(ideal * (p.pb_warm_s + p.pb_window_s + 15))  # never runs dry in the window
    path = write_jsonl(stack.workdir / "provider.jsonl", jobs, "pb")
    procs = stack.start_workers(p.workers, p.pb_threads)
    procs.append(stack.start_beat())
    batch_id = None
    try:
        batch_id, _, _ = stack.submit(path)
        sampler = Sampler(
            stack.database_url,
            batch_id,
            jobs,
            {proc.name: proc.pid for proc in procs},
            served=lambda: int(stack.sim_stats()["total_served"]),
        )
        window = sampler.run(p.pb_warm_s, p.pb_window_s, timeout_s=p.pb_window_s * 4 + 60)
        counts = dict(stack.sql("SELECT state, count(*) FROM jobs GROUP BY state"))
    finally:
        stack.abandon(procs, *([batch_id] if batch_id else []))
    efficiency = 100 * window.rate / ideal
    served = window.served_rate
    report.add(
        Figure(
            NAME,
            "completed jobs/s vs cap ideal",
            efficiency,
            "%",
            "≥ 95%",
            goal_at_least(efficiency, 95.0),
            note=(
                f"{window.rate:.1f} jobs/s against an ideal of {ideal:.0f}/s (cap {p.pb_cap} "
                f"concurrent x {p.pb_latency_ms:.0f} ms); {p.workers} workers x "
                f"{p.pb_threads} threads; window {window.seconds:.0f} s"
            ),
        ),
        Figure(NAME, "provider busy (served/s vs ideal)", _pct(served, ideal), "%"),
    )
    report.details[NAME] = {
        "ideal_per_s": ideal,
        "completed_per_s": window.rate,
        "served_per_s": served,
        "window_s": window.seconds,
        "window_jobs": window.jobs,
        "submitted": jobs,
        "job_states": {str(k): int(v) for k, v in counts.items()},
        "worker_warnings": _warnings(procs),
    }


def _pct(value: float | None, ideal: float) -> float | None:
    return None if value is None else 100 * value / ideal


def _warnings(procs: list) -> int:  # type: ignore[type-arg]
    return sum(p.logs().count(" WARNING ") for p in procs)
