"""The Celery settings issue 8 asks for, the beat schedule, `llmq beat` / `celery -A workers beat`
sending real sweep messages, and the broker backlog the sweeper reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.publish import enqueue_job_ids
from llmq.commands.service import beat_argv
from schemas.settings import Settings
from tests.chaos.services import PrivateRedis, free_port
from workers import celeryconfig
from workers.app import app
from workers.beat import build_schedule
from workers.sweeper import broker_backlog


def test_at_least_once_delivery_settings() -> None:
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_connection_max_retries is None  # reconnect forever
    assert conf.broker_connection_retry_on_startup
    assert conf.worker_soft_shutdown_timeout > 0 and conf.worker_enable_soft_shutdown_on_idle
    options = conf.broker_transport_options
    assert options["unacked_restore_throttle"] == 1
    assert 1 <= options["unacked_restore_interval"] <= 10


def test_visibility_timeout_outlasts_a_run_plus_a_countdown() -> None:
    from schemas.config import ProviderSettings, RoutingSettings

    longest_run = ProviderSettings().timeout_s
    longest_countdown = RoutingSettings().max_countdown_s
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > longest_run + longest_countdown


def test_the_schedule_sweeps_every_interval_from_the_control_queue() -> None:
    schedule = build_schedule(Settings(sweep_interval_s=2.5))
    sweep = schedule["llmq-sweep"]
    assert sweep["task"] == "llmq.sweep" and sweep["schedule"] == 2.5
    assert sweep["options"]["expires"] >= 5  # ticks with no worker up do not pile up
    assert app.conf.beat_schedule == celeryconfig.beat_schedule
    assert "llmq-sweep" in app.conf.beat_schedule
    route = app.amqp.router.route({}, "llmq.sweep")
    assert route["queue"].name == "llmq.control"
    assert app.amqp.router.route({}, "llmq.process_job")["queue"].name == "llmq"


def test_llmq_beat_runs_celery_beat_with_a_schedule_file(tmp_path: Path) -> None:
    argv = beat_argv("INFO", str(tmp_path / "s"), ["--max-interval", "1"])
    assert argv[1:6] == ["-m", "celery", "-A", "workers", "beat"]
    assert argv[argv.index("--schedule") + 1] == str(tmp_path / "s")
    assert argv[-2:] == ["--max-interval", "1"]


@pytest.fixture(scope="module")
def private_redis() -> Iterator[str]:
    if not PrivateRedis.available():
        pytest.skip("redis-server is not installed")
    server = PrivateRedis().start()
    yield server.url
    server.stop()


@pytest.mark.parametrize("command", ["llmq", "celery"])
def test_beat_sends_sweeps_to_the_control_queue(
    command: str, private_redis: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(private_redis)
    client.flushall()
    head = [sys.executable, "-m", "llmq.cli", "beat"]
    if command == "celery":
        head = [sys.executable, "-m", "celery", "-A", "workers", "beat"]
    argv = [*head, "-s", str(tmp_path / "schedule"), "-l", "INFO"]
    env = {**os.environ, "LLMQ_BROKER_URL": private_redis, "LLMQ_SWEEP_INTERVAL_S": "0.5"}
    log = tmp_path / "beat.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while client.llen("llmq.control") < 2:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert client.llen("llmq") == 0  # nothing lands on the job queue
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        client.close()


def test_broker_backlog_counts_waiting_job_messages(private_redis: str) -> None:
    redis.Redis.from_url(private_redis).flushall()
    assert broker_backlog("llmq", private_redis) == 0  # an empty queue does not exist in Redis
    enqueue_job_ids(private_redis, [uuid.uuid4() for _ in range(7)])
    assert broker_backlog("llmq", private_redis) == 7
    assert broker_backlog("llmq", f"redis://127.0.0.1:{free_port()}/0") is None
