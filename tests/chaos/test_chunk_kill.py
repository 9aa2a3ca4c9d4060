"""Issue 21: SIGKILL a worker while it holds whole chunks, in the middle of their calls.

`llmq submit` publishes `llmq.process_chunk` messages of up to 50 ids. Each worker thread
holds one chunk: its jobs are claimed together and admitted together (attempt rows written
and the worst cases reserved in one transaction), their calls go out on the worker's call
loop, and answers are finished as they come. A chunk thread first takes call slots, then claims
that many of its ids (a wave); the kill lands while a worker holds a whole wave of running
jobs, so the rest of its chunk is still queued, its wave's calls are in flight or answered.
Then:

- every job ends succeeded exactly once, with one succeeded attempt (nothing lost, nothing
  counted twice), and the jobs the victim held run again within 30 s (heartbeats);
- the calls the provider served but the ledger never recorded are at most the victim's call
  slots (`LLMQ_CONCURRENCY`): a slot is given back only once its answer is committed, and a
  one-job task (a retry) holds one too;
- the quota's spend is never below what the simulator billed (a cut-off call is booked at its
  worst case as `spent_unknown`), and nothing stays reserved.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.chaos.checks import Figures, batch_figures, wait_reservations_closed
from tests.chaos.recovery import held_jobs, seconds_until_rerun
from tests.chaos.stack import Services, Stack

pytestmark = pytest.mark.chaos

JOBS = 600
CONCURRENCY = 6  # threads = call slots per worker
RECOVERY_S = 30.0


def test_kill_a_worker_holding_chunks(services: Services, tmp_path: Path, figures: Figures) -> None:
    stack = Stack(services, tmp_path, concurrency=CONCURRENCY)
    try:
        stack.start_workers(2)
        stack.start_beat()
        batch = stack.submit(JOBS)
        stack.wait_for(batch, 60, timeout_s=180)
        victim, held = _busy_worker(stack)
        killed_at = time.monotonic()
        stack.kill_and_restart(victim)
        recovery = seconds_until_rerun(stack.engine, held, killed_at, 90)
        stack.wait_settled(batch, JOBS, timeout_s=300)
        wait_reservations_closed(stack.engine)

        got = batch_figures(stack.engine, stack.client, batch, JOBS)
        sim = services.sim.stats()
        recorded = got["attempts"].get("succeeded", 0) + got["attempts"].get("superseded", 0)
        models = [m for p in sim["providers"].values() for m in p["models"].values()]
        got.update(
            held_at_kill=len(held),
            recovery_s=round(recovery, 1),
            sim_served=sim["total_served"],
            served_unrecorded=sim["total_served"] - recorded,
            sim_tokens=sum(m["prompt_tokens"] + m["completion_tokens"] for m in models),
            sim_usd=str(
                sum(
                    Decimal(m["prompt_tokens"]) + 2 * Decimal(m["completion_tokens"])
                    for m in models
                )
                / 1_000_000
            ),
        )
        figures.record("chunk-kill", got)

        assert len(held) >= CONCURRENCY - 1, got  # the kill cut a wave of a chunk
        assert got["lost"] == 0 and got["duplicated"] == 0, got
        assert got["succeeded"] == JOBS, got
        assert got["job_tokens"] == got["succeeded_attempt_tokens"], got
        assert recovery <= RECOVERY_S, got
        assert got["served_unrecorded"] <= CONCURRENCY, got
        assert got["reserved_tokens_left"] == 0, got
        assert got["quota_spent_tokens"] >= got["sim_tokens"], got
        assert Decimal(got["quota_spent_usd"]) >= Decimal(got["sim_usd"]), got
    except AssertionError:
        print(stack.logs())
        raise
    finally:
        stack.close()


def _busy_worker(stack: Stack, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    """A live worker holding (nearly) all its call slots' worth of running jobs (a chunk's
    wave), with those jobs; the busiest one seen on timeout."""
    deadline = time.monotonic() + timeout_s
    best = (stack.workers[0], {})
    while time.monotonic() < deadline:
        for worker in (w for w in stack.workers if w.alive()):
            held = held_jobs(stack.engine, worker.pid)
            if len(held) >= CONCURRENCY - 1:
                return worker, held
            if len(held) > len(best[1]):
                best = (worker, held)
        time.sleep(0.05)
    return best
