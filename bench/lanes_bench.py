"""Batch lanes (issue 18): the same jobs through the batch lane and the sync lane, whole system.

`llmq worker` processes and `llmq beat` (which sends the flusher and the poller) against the
simulator's OpenAI Batch API; N jobs submitted with `--deadline 24h`, then the same N without a
deadline. Figures: each run's ledger cost and wall time, the ratio (goal <= 0.51), and whether
the ledger equals what the simulator billed per lane. The simulator ends a batch as soon as
it is polled, so the batch lane's wall time is flush + poll intervals, not a provider's hours.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path

import yaml

from bench.params import Params
from bench.report import Figure, Report, goal_at_most
from bench.stack import Stack, write_jsonl

NAME = "lanes"
LANES = {"flush_after_s": 2, "poll_s": 2, "window_s": 60, "margin_s": 60}


def run(stack: Stack, p: Params, report: Report) -> None:
    stack.configure_sim(latency_ms=0)
    stack.sim_call("POST", "/_sim/config", {"prices": {"*": ["0.15", "0.60"]}})
    data = yaml.safe_load(stack.config_path.read_text())
    data["batch_lane"] = LANES
    stack.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    n = p.lanes_jobs
    # Other scenarios ran before this one on the same ledger and simulator: count only what
    # this scenario adds (differences of the sums, ledger and simulator alike).
    before = _sums(stack)
    procs = [*stack.start_workers(p.workers, 16), stack.start_beat()]
    try:
        batch_wall = _timed(stack, write_jsonl(stack.workdir / "lanes.jsonl", n, "ln"), n, "24h")
        sync_wall = _timed(stack, write_jsonl(stack.workdir / "sync.jsonl", n, "sy"), n, None)
    finally:
        stack.stop(procs)
    cost, tokens, billed, sim_tokens = _minus(_sums(stack), before)
    ratio = float(cost["batch"] / cost["sync"]) if cost["sync"] else None
    same = tokens == sim_tokens
    # The ledger keeps each attempt's cost to 8 decimals (half a 1e-8 USD unit per attempt at
    # most); the simulator bills exact sums. Half of 0.15 USD/M is 9 decimals per token.
    gap = float(sum(abs(cost[k] - billed.get(k, Decimal(0))) for k in cost))
    report.add(
        Figure(NAME, f"ledger cost, {n} jobs, batch lane", float(cost["batch"]), "USD"),
        Figure(NAME, f"ledger cost, {n} jobs, sync lane", float(cost["sync"]), "USD"),
        Figure(NAME, "batch / sync cost", ratio, "", "<= 0.51", goal_at_most(ratio, 0.51)),
        Figure(NAME, "ledger tokens == simulator's, per lane", 1.0 if same else 0.0, "", "1", same),
        Figure(NAME, "|ledger - simulator bill|", gap, "USD", f"<= {n} x 5e-9",
               goal_at_most(gap, n * 5e-9)),
        Figure(NAME, "wall, batch lane (flush + poll)", batch_wall, "s"),
        Figure(NAME, "wall, sync lane", sync_wall, "s"),
    )  # fmt: skip
    report.details[NAME] = {"cost": {k: str(v) for k, v in cost.items()},
                            "billed": {k: str(v) for k, v in billed.items()}}  # fmt: skip


_TOKENS = (
    "SELECT sum(prompt_tokens), sum(completion_tokens) FROM attempts "
    "WHERE coalesce(lane, 'sync') = :lane"
)
_COST = "SELECT sum(cost_usd) FROM attempts WHERE coalesce(lane, 'sync') = :lane"
_LANES = ("batch", "sync")
Sums = tuple[
    dict[str, Decimal], dict[str, tuple[int, int]], dict[str, Decimal], dict[str, tuple[int, int]]
]


def _sums(stack: Stack) -> Sums:
    """(ledger cost, ledger tokens, simulator bill, simulator tokens), each per lane."""
    cost = {lane: Decimal(stack.sql(_COST, lane=lane)[0][0] or 0) for lane in _LANES}
    tokens = {
        lane: (int(row[0] or 0), int(row[1] or 0))
        for lane in _LANES
        for row in stack.sql(_TOKENS, lane=lane)
    }
    rows = stack.sim_stats().get("billing", [])
    billed = {lane: Decimal(0) for lane in _LANES}
    sim_tokens = dict.fromkeys(_LANES, (0, 0))
    for r in rows:
        billed[r["lane"]] = billed.get(r["lane"], Decimal(0)) + Decimal(r["usd"])
        pt, ct = sim_tokens.get(r["lane"], (0, 0))
        sim_tokens[r["lane"]] = (pt + r["prompt_tokens"], ct + r["completion_tokens"])
    return cost, tokens, billed, sim_tokens


def _minus(after: Sums, before: Sums) -> Sums:
    def money(a: dict[str, Decimal], b: dict[str, Decimal]) -> dict[str, Decimal]:
        return {k: a.get(k, Decimal(0)) - b.get(k, Decimal(0)) for k in _LANES}

    def counts(
        a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]
    ) -> dict[str, tuple[int, int]]:
        return {
            k: tuple(x - y for x, y in zip(a.get(k, (0, 0)), b.get(k, (0, 0)), strict=True))
            for k in _LANES
        }  # type: ignore[misc]

    return (
        money(after[0], before[0]),
        counts(after[1], before[1]),
        money(after[2], before[2]),
        counts(after[3], before[3]),
    )


def _timed(stack: Stack, path: Path, n: int, deadline: str | None) -> float:
    argv = stack.llmq_argv("submit", str(path), "--json")
    if deadline:
        argv += ["--deadline", deadline]
    t0 = time.monotonic()
    done = subprocess.run(argv, env=stack.env(), cwd=stack.workdir, capture_output=True,
                          text=True, timeout=300, check=True)  # fmt: skip
    batch_id = uuid.UUID(done.stdout.strip().splitlines()[-1].split('"')[3])
    stack.wait_finished(batch_id, n, timeout_s=600)
    return time.monotonic() - t0
