"""Both providers misbehave at once: 30% 429 (with Retry-After), 10% 500, 5% timeouts (1 s
client timeout) and 2% malformed bodies. Every job ends succeeded, or failed with its reason;
none is stuck, and none made more calls than its attempt budget."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.chaos.checks import Figures, batch_figures, failure_reasons, wait_reservations_closed
from tests.chaos.stack import Services, Stack

pytestmark = pytest.mark.chaos

JOBS = 300
CONCURRENCY = 8
MAX_ATTEMPTS = 6
FAULTS = {
    "rate_429": 0.30,
    "rate_500": 0.10,
    "rate_timeout": 0.05,
    "rate_malformed": 0.02,
    "retry_after_s": 0.2,
    "timeout_hold_s": 2.0,
}


def test_provider_faults(services: Services, tmp_path: Path, figures: Figures) -> None:
    for provider in ("openai", "anthropic"):
        services.sim.configure(provider, **FAULTS)
    stack = Stack(
        services, tmp_path, concurrency=CONCURRENCY, routing={"max_attempts": MAX_ATTEMPTS}
    )
    try:
        started = time.monotonic()
        stack.start_workers(2)
        stack.start_beat()
        batch = stack.submit(JOBS)
        stack.wait_settled(batch, JOBS, timeout_s=240)
        wait_reservations_closed(stack.engine)

        got = batch_figures(stack.engine, stack.client, batch, JOBS)
        sim = services.sim.stats()
        got.update(
            faults="429 30%, 500 10%, timeout 5%, malformed 2%",
            failure_reasons=failure_reasons(stack.client, batch),
            sim_requests=sim["total_requests"],
            sim_by_status={p: sim["providers"][p]["by_status"] for p in ("openai", "anthropic")},
            seconds=round(time.monotonic() - started, 1),
        )
        figures.record("provider-faults", got)

        assert got["lost"] == 0 and got["duplicated"] == 0, got
        assert got["succeeded"] + got["failed"] == JOBS, got
        assert got["succeeded_without_result"] == 0 and got["failed_without_reason"] == 0, got
        assert got["max_attempt_rows_per_job"] <= MAX_ATTEMPTS, got
        assert got["max_claims_per_job"] <= MAX_ATTEMPTS, got
        assert got["job_tokens"] == got["succeeded_attempt_tokens"], got
        assert got["reserved_tokens_left"] == 0, got
    except AssertionError:
        print(stack.logs())
        raise
    finally:
        stack.close()
