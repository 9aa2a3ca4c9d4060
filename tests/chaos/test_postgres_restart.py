"""Restart Postgres in the middle of a batch: every connection of workers, sweeper and producer
drops and transactions in flight roll back. Workers retry (their pools pre-ping), the sweeper
resumes, the producer's client keeps working, and the batch completes exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.chaos.checks import Figures, batch_figures, wait_reservations_closed
from tests.chaos.stack import Services, Stack

pytestmark = pytest.mark.chaos

JOBS = 600
AFTER = 100  # a second batch submitted after the restart, through the same client
CONCURRENCY = 8
RESTART_AT = 200  # jobs done when Postgres restarts


def test_postgres_restart(services: Services, tmp_path: Path, figures: Figures) -> None:
    stack = Stack(services, tmp_path, concurrency=CONCURRENCY)
    try:
        started = time.monotonic()
        stack.start_workers(2)
        stack.start_beat()
        batch = stack.submit(JOBS)
        stack.wait_for(batch, RESTART_AT, timeout_s=180)
        how = services.restart_postgres()
        # The producer recovers: its pooled connections died with the server; the same
        # client submits and reads again (pre-ping replaces dead connections).
        later = stack.submit(AFTER, prefix="after")
        recovery = stack.wait_settled(batch, JOBS, timeout_s=240)
        stack.wait_settled(later, AFTER, timeout_s=120)
        status = stack.client.get_batch(batch)
        wait_reservations_closed(stack.engine)

        got = batch_figures(stack.engine, stack.client, batch, JOBS)
        after = batch_figures(stack.engine, stack.client, later, AFTER)
        got.update(
            restarts=1,
            restart=how,
            batch_after_restart=f"{after['succeeded']}/{AFTER} succeeded",
            seconds_after_restart=round(recovery, 1),
            seconds=round(time.monotonic() - started, 1),
        )
        figures.record("postgres-restart", got)

        assert status.settled and status.counts["succeeded"] == JOBS, status
        for fig in (got, after):
            assert fig["lost"] == 0 and fig["duplicated"] == 0, fig
            assert fig["job_tokens"] == fig["succeeded_attempt_tokens"], fig
        assert got["succeeded"] == JOBS and after["succeeded"] == AFTER, (got, after)
        assert got["reserved_tokens_left"] == 0, got
    except AssertionError:
        print(stack.logs())
        raise
    finally:
        stack.close()
