"""The Celery settings issue 8 asks for, the beat schedule (built when beat starts, never when
the settings are imported), `llmq beat` / `celery -A workers beat` sending real sweep messages,
and the broker backlog the sweeper reads."""

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
from celery import Celery
from celery.schedules import crontab

from core.publish import enqueue_job_ids
from llmq.commands.service import beat_argv
from schemas.settings import Settings
from tests.chaos.services import PrivateRedis, free_port
from workers.app import app
from workers.beat import LlmqScheduler, build_schedule
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
    assert app.conf.beat_scheduler == "workers.beat:LlmqScheduler"
    route = app.amqp.router.route({}, "llmq.sweep")
    assert route["queue"].name == "llmq.control"
    assert app.amqp.router.route({}, "llmq.process_job")["queue"].name == "llmq"


# Run in a fresh interpreter: imports the worker's settings, app and tasks the way a worker
# or the producer's tools do, and reports whether the config file was opened or loaded.
_IMPORT_PROBE = """
import sys

path = sys.argv[1]
opened = []
sys.addaudithook(lambda event, args: event == "open" and str(args[0]) == path and opened.append(1))

import core.config_file

loads = []
real_load = core.config_file.load_config
core.config_file.load_config = lambda *a, **k: loads.append(a) or real_load(*a, **k)

import workers.celeryconfig
import workers.tasks
from workers.app import app

assert app.conf.beat_scheduler == "workers.beat:LlmqScheduler", app.conf.beat_scheduler
assert app.conf.beat_schedule == {}, app.conf.beat_schedule  # built by the scheduler instead
print(len(opened), len(loads))
"""


@pytest.mark.parametrize("config", ["missing", "broken"])
def test_importing_the_celery_settings_does_not_read_the_config(
    config: str, tmp_path: Path
) -> None:
    path = tmp_path / "llm_config.yaml"
    if config == "broken":
        path.write_text("models: [\n  nightly: {time: 'x\n", encoding="utf-8")
    env = {**os.environ, "LLMQ_CONFIG": str(path)}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, str(path)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0"], done.stderr  # never opened, never loaded


def _started_scheduler(tmp_path: Path) -> LlmqScheduler:
    """What `celery -A workers beat` starts, on a fresh app with the workers' settings."""
    probe = Celery("probe", set_as_current=False)
    probe.config_from_object("workers.celeryconfig")
    return LlmqScheduler(app=probe, schedule_filename=str(tmp_path / "schedule"))


def test_a_starting_beat_builds_the_schedule_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "llm_config.yaml"
    path.write_text("models: []\nnightly:\n  time: '4:05'\n", encoding="utf-8")
    monkeypatch.setenv("LLMQ_CONFIG", str(path))
    monkeypatch.setenv("LLMQ_SWEEP_INTERVAL_S", "0.5")
    scheduler = _started_scheduler(tmp_path)
    try:
        entries = scheduler.schedule
        assert entries["llmq-sweep"].task == "llmq.sweep"
        assert entries["llmq-sweep"].schedule.run_every.total_seconds() == 0.5
        nightly = entries["llmq-nightly"]
        assert nightly.task == "llmq.nightly_run"
        assert nightly.options["queue"] == "llmq.control"
        assert isinstance(nightly.schedule, crontab)
        assert nightly.schedule.hour == {4} and nightly.schedule.minute == {5}
    finally:
        scheduler.close()


def test_a_broken_config_still_starts_beat_at_the_default_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMQ_CONFIG", str(tmp_path / "missing.yaml"))
    scheduler = _started_scheduler(tmp_path)
    try:
        nightly = scheduler.schedule["llmq-nightly"].schedule
        assert nightly.hour == {2} and nightly.minute == {0}  # NightlySettings' default
        assert "llmq-sweep" in scheduler.schedule
    finally:
        scheduler.close()


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
        assert "llmq-nightly (llmq.nightly_run)" in log.read_text()  # and the nightly run
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
