"""FLUSHALL Redis in the middle of a batch: every queued message, the unacked set, the health
state and the bindings are gone. The ledger still knows every job; the sweeper re-sends them,
and the batch completes with nothing lost or counted twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.chaos.checks import Figures, batch_figures, wait_reservations_closed
from tests.chaos.stack import Services, Stack

pytestmark = pytest.mark.chaos

JOBS = 600
CONCURRENCY = 8
FLUSH_AT = 200  # jobs done when Redis loses everything


def test_redis_loss(services: Services, tmp_path: Path, figures: Figures) -> None:
    stack = Stack(services, tmp_path, concurrency=CONCURRENCY)
    try:
        started = time.monotonic()
        stack.start_workers(2)
        stack.start_beat()
        batch = stack.submit(JOBS)
        stack.wait_for(batch, FLUSH_AT, timeout_s=180)
        services.flush_redis()
        done_at_flush = stack.done(batch)
        recovery = stack.wait_settled(batch, JOBS, timeout_s=240)
        wait_reservations_closed(stack.engine)

        got = batch_figures(stack.engine, stack.client, batch, JOBS)
        got.update(
            flushes=1,
            done_at_flush=done_at_flush,
            seconds_after_flush=round(recovery, 1),
            seconds=round(time.monotonic() - started, 1),
        )
        figures.record("redis-loss", got)

        assert got["lost"] == 0 and got["duplicated"] == 0, got
        assert got["succeeded"] == JOBS, got
        assert got["job_tokens"] == got["succeeded_attempt_tokens"], got
        assert got["reserved_tokens_left"] == 0, got
    except AssertionError:
        print(stack.logs())
        raise
    finally:
        stack.close()
